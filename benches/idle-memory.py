#!/usr/bin/env python3
"""Memory per idle keep-alive connection, and whether it comes back after a burst.

Starts pingora-secgw (release build; answering by itself, so no upstream is
involved) on loopback, then, for each kind of connection in `--kinds` (plain
HTTP/1.1, HTTP/1.1 over TLS, HTTP/2 over TLS; a fresh gateway for each):
1. reads its RSS once warmed up (one request);
2. opens N connections, sends one request on each and reads the answer, so each
   is an idle keep-alive connection, and reads RSS again: (idle - start) / N is
   the memory per idle connection;
3. closes them all, waits SETTLE seconds and reads RSS a last time.
Loopback only; bounded by N and SETTLE. `--bin` measures another build of the
gateway (one without `limits:` needs `--no-limits`).
"""
import argparse, os, resource, socket, subprocess, sys, tempfile, time

from load import bench_config, free_port, h2_frame, insecure_tls, rss_kib, self_signed, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))




REQUEST = b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n"


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"ok\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError(f"connection closed early: {data!r}")
        data += chunk
    return data



# GET https://bench.test/ in HPACK: static :method GET, :scheme https, :path /,
# then :authority as a literal without indexing (name index 1).
H2_REQUEST = (
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
    + h2_frame(4, 0, 0)
    + h2_frame(1, 0x5, 1, b"\x82\x87\x84\x01\x0abench.test")
)


def read_h2_response(sock):
    """Reads frames until stream 1 ends, acknowledging the gateway's SETTINGS."""
    data = b""
    while True:
        while len(data) < 9 or len(data) < 9 + int.from_bytes(data[:3], "big"):
            chunk = sock.recv(16384)
            if not chunk:
                raise RuntimeError(f"connection closed early: {data!r}")
            data += chunk
        size = int.from_bytes(data[:3], "big")
        kind, flags = data[3], data[4]
        stream = int.from_bytes(data[5:9], "big") & 0x7FFFFFFF
        data = data[9 + size:]
        if kind == 4 and not flags & 1:
            sock.sendall(h2_frame(4, 1, 0))
        if stream == 1 and kind in (0, 1) and flags & 1:
            return




def connect(kind, port, tls):
    """One connection of `kind` that has had one answer and is now idle."""
    sock = socket.create_connection(("127.0.0.1", port))
    if kind == "plain":
        sock.sendall(REQUEST)
        return sock, read_response
    sock = tls.wrap_socket(sock, server_hostname="bench.test")
    if kind == "tls":
        sock.sendall(REQUEST)
        return sock, read_response
    if sock.selected_alpn_protocol() != "h2":
        raise RuntimeError("the gateway did not choose h2")
    sock.sendall(H2_REQUEST)
    return sock, read_h2_response


def kinds(text):
    """The kinds of connection named in `--kinds`."""
    names = text.split(",")
    for kind in names:
        if kind not in ("plain", "tls", "h2"):
            sys.exit(f"unknown kind {kind!r}")
    return names


def idle_gateway(work, kind, limits):
    """The config of a gateway answering by itself on a free port, for connections
    of `kind`: (config path, port, client TLS context or None)."""
    port = free_port()
    listener = f"{{address: \"127.0.0.1:{port}\"}}"
    tls = None
    if kind != "plain":
        cert, key = self_signed(work)
        listener = f"{{address: \"127.0.0.1:{port}\", tls: {{cert: {cert}, key: {key}}}}}"
        tls = insecure_tls(["h2"] if kind == "h2" else ["http/1.1"])
    conf = bench_config(work, f"listeners: [{listener}]\n{limits}"
                        "vhosts: [{name: bench, hosts: [\"*\"], respond: {status: 200, body: \"ok\\n\"}}]\n")
    return conf, port, tls


def measure(args, kind):
    """Runs one gateway through warm-up, N idle connections of `kind` and the settle."""
    work = tempfile.mkdtemp(prefix="secgw-idle-")
    need = args.connections + 256
    limits = "" if args.no_limits else (
        f"limits: {{keepalive_timeout_ms: 600000, max_connections: {need}}}\n"
    )
    conf, port, tls = idle_gateway(work, kind, limits)
    log = open(os.path.join(work, "gw.log"), "w")
    proc = subprocess.Popen([args.bin, "-c", conf], stdout=log, stderr=log,
                            env={**os.environ, "RUST_LOG": "warn"})
    try:
        wait_port(port, proc, "the gateway")
        warm, read = connect(kind, port, tls)
        read(warm)
        warm.close()
        time.sleep(1)
        start = rss_kib(proc.pid)

        socks = [connect(kind, port, tls) for _ in range(args.connections)]
        for s, read in socks:
            read(s)
        time.sleep(2)
        idle = rss_kib(proc.pid)

        for s, _ in socks:
            s.close()
        time.sleep(args.settle)
        after = rss_kib(proc.pid)
        if proc.poll() is not None:
            sys.exit("the gateway exited during the run")
    finally:
        proc.terminate()
        proc.wait()

    per_conn = (idle - start) * 1024 / args.connections
    print(f"{kind}: {args.connections} idle keep-alive connections")
    print(f"  RSS at start:             {start / 1024:8.1f} MiB")
    print(f"  RSS with the connections: {idle / 1024:8.1f} MiB")
    print(f"  memory per idle connection: {per_conn / 1024:6.1f} KiB")
    print(f"  RSS {args.settle:.0f} s after closing:   {after / 1024:8.1f} MiB "
          f"({(after - start) * 100 / start:+.0f}% of the start)")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "pingora-secgw"))
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--settle", type=float, default=60.0, help="seconds to wait after closing")
    ap.add_argument("--kinds", default="plain,tls,h2",
                    help="comma-separated: plain (HTTP/1.1), tls (HTTP/1.1 over TLS), h2")
    ap.add_argument("--no-limits", action="store_true", help="for builds without `limits:`")
    args = ap.parse_args()

    need = args.connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))
    print(f"binary: {args.bin}")
    for kind in kinds(args.kinds):
        measure(args, kind)


if __name__ == "__main__":
    main()
