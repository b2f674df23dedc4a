#!/usr/bin/env python3
"""Memory per idle keep-alive connection, and whether it comes back after a burst.

Starts pingora-secgw (release build; answering by itself, so no upstream is
involved) on loopback, then:
1. reads its RSS once warmed up (one request);
2. opens N connections, sends one request on each and reads the answer, so each
   is an idle keep-alive connection, and reads RSS again: (idle - start) / N is
   the memory per idle connection;
3. closes them all, waits SETTLE seconds and reads RSS a last time.
Loopback only; bounded by N and SETTLE. `--bin` measures another build of the
gateway (one without `limits:` needs `--no-limits`).
"""
import argparse, os, resource, socket, subprocess, sys, tempfile, time

from load import free_port, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


REQUEST = b"GET / HTTP/1.1\r\nHost: bench.test\r\n\r\n"


def read_response(sock):
    data = b""
    while b"\r\n\r\n" not in data or not data.endswith(b"ok\n"):
        chunk = sock.recv(4096)
        if not chunk:
            raise RuntimeError(f"connection closed early: {data!r}")
        data += chunk
    return data


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "pingora-secgw"))
    ap.add_argument("--connections", type=int, default=2000)
    ap.add_argument("--settle", type=float, default=60.0, help="seconds to wait after closing")
    ap.add_argument("--no-limits", action="store_true", help="for builds without `limits:`")
    args = ap.parse_args()

    need = args.connections + 256
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))

    work = tempfile.mkdtemp(prefix="secgw-idle-")
    port = free_port()
    limits = "" if args.no_limits else (
        f"limits: {{keepalive_timeout_ms: 600000, max_connections: {need}}}\n"
    )
    conf = os.path.join(work, "gw.yaml")
    with open(conf, "w") as f:
        f.write(
            f"threads: 1\nwork_stealing: false\npid_file: {work}/gw.pid\n"
            "grace_period_seconds: 0\ngraceful_shutdown_timeout_seconds: 1\n"
            f"upgrade_sock: {work}/up.sock\n"
            f"listeners: [{{address: \"127.0.0.1:{port}\"}}]\n{limits}"
            "vhosts: [{name: bench, hosts: [\"*\"], respond: {status: 200, body: \"ok\\n\"}}]\n"
        )
    log = open(os.path.join(work, "gw.log"), "w")
    proc = subprocess.Popen([args.bin, "-c", conf], stdout=log, stderr=log,
                            env={**os.environ, "RUST_LOG": "warn"})
    try:
        wait_port(port, proc, "the gateway")
        warm = socket.create_connection(("127.0.0.1", port))
        warm.sendall(REQUEST)
        read_response(warm)
        warm.close()
        time.sleep(1)
        start = rss_kib(proc.pid)

        socks = []
        for _ in range(args.connections):
            s = socket.create_connection(("127.0.0.1", port))
            s.sendall(REQUEST)
            socks.append(s)
        for s in socks:
            read_response(s)
        time.sleep(2)
        idle = rss_kib(proc.pid)

        for s in socks:
            s.close()
        time.sleep(args.settle)
        after = rss_kib(proc.pid)
        if proc.poll() is not None:
            sys.exit("the gateway exited during the run")
    finally:
        proc.terminate()
        proc.wait()

    per_conn = (idle - start) * 1024 / args.connections
    print(f"binary: {args.bin}")
    print(f"idle keep-alive connections: {args.connections}")
    print(f"RSS at start:             {start / 1024:8.1f} MiB")
    print(f"RSS with the connections: {idle / 1024:8.1f} MiB")
    print(f"memory per idle connection: {per_conn / 1024:6.1f} KiB")
    print(f"RSS {args.settle:.0f} s after closing:   {after / 1024:8.1f} MiB "
          f"({(after - start) * 100 / start:+.0f}% of the start)")


if __name__ == "__main__":
    main()
