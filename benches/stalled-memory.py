#!/usr/bin/env python3
"""Memory per stalled HTTP/2 response stream: a client that never opens its window.

Starts, on loopback, an upstream (stdlib HTTP/1.1 server, threaded, keep-alive,
answering every GET with `--body-mib` MiB written as fast as it can) and
pingora-secgw (release build, one worker thread, a TLS listener proxying to it), then:
1. warms the gateway up with one full download over HTTP/2 (windows wide open) and
   reads its RSS;
2. opens `--connections` TLS connections speaking HTTP/2 by hand, whose SETTINGS give
   every stream an initial window of `--window` bytes (0: no DATA at all; 65535: the
   default, and the connection's own 65,535 bytes are never topped up either), and
   sends `--streams` GETs on each. It reads everything the gateway sends (acknowledging
   SETTINGS, answering PINGs, never sending WINDOW_UPDATE) until every stream has its
   response HEADERS, waits `--settle` seconds and reads the RSS again:
   (stalled - start) / streams is the memory per stalled stream;
3. counts the upstream connections open (ESTABLISHED, from /proc/net/tcp) and the body
   bytes the gateway holds (what the upstream handed to the kernel, less the kernel's
   queues on both ends of those connections, less what reached the client), closes
   the client connections, waits `--settle` seconds and reads the RSS a last time;
4. with `--downloads N`, times N plain downloads of the body through the gateway
   (curl, HTTP/2 over TLS) and prints the median speed.
Loopback only; bounded by `--timeout` for the headers and by `--settle`.
"""
import argparse, http.server, os, resource, select, shutil, socket, socketserver, statistics
import struct, subprocess, sys, tempfile, threading, time

from load import bench_config, free_port, h2_frame, insecure_tls, rss_kib, self_signed, wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HOST = "bench.test"

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, ACK = 0x1, 0x1
SETTINGS_ENABLE_PUSH, SETTINGS_INITIAL_WINDOW_SIZE = 0x2, 0x4
MAX_WINDOW = 2**31 - 1




def upstream_sockets(port):
    """The upstream connections on loopback, from /proc/net/tcp (and tcp6): how many
    the gateway has ESTABLISHED to `port`, and the bytes the kernel holds for them
    (the upstream's send queues plus the gateway's receive queues)."""
    count = queued = 0
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] != "01":
                        continue
                    local = int(fields[1].rsplit(":", 1)[1], 16)
                    remote = int(fields[2].rsplit(":", 1)[1], 16)
                    tx, rx = (int(q, 16) for q in fields[4].split(":"))
                    if remote == port:  # the gateway's end
                        count += 1
                        queued += rx
                    elif local == port:  # the upstream's end
                        queued += tx
        except FileNotFoundError:
            pass
    return count, queued




# --- the upstream ---------------------------------------------------------------

class Sent:
    """Body bytes the upstream has handed to the kernel, over all its connections."""

    def __init__(self):
        self.lock = threading.Lock()
        self.bytes = 0

    def add(self, n):
        with self.lock:
            self.bytes += n


def start_upstream(body_bytes):
    """A threaded keep-alive HTTP/1.1 server on loopback; returns (server, port, Sent)."""
    chunk = memoryview(b"x" * 65536)
    sent = Sent()

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(body_bytes))
            self.end_headers()
            left = body_bytes
            try:
                # Non-blocking, so that `sent` counts exactly what the kernel took
                # (a blocking send() can have queued part of its buffer when it blocks).
                self.connection.setblocking(False)
                writable = select.poll()  # select() stops at descriptor 1024
                writable.register(self.connection, select.POLLOUT)
                while left:
                    try:
                        n = self.connection.send(chunk[:min(left, len(chunk))])
                    except BlockingIOError:
                        writable.poll(1000)
                        continue
                    sent.add(n)
                    left -= n
                self.connection.setblocking(True)
            except OSError:
                self.close_connection = True

        def log_message(self, *_):
            pass

    class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
        daemon_threads = True
        request_queue_size = 4096
        allow_reuse_address = True

    threading.stack_size(256 * 1024)
    server = Server(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1], sent


# --- a hand-made HTTP/2 client ----------------------------------------------------


def h2_settings(window):
    return h2_frame(SETTINGS, 0, 0,
                    struct.pack(">HI", SETTINGS_ENABLE_PUSH, 0)
                    + struct.pack(">HI", SETTINGS_INITIAL_WINDOW_SIZE, window))


# GET https://bench.test/ in HPACK: static :method GET, :scheme https, :path /,
# then :authority as a literal without indexing (name index 1).
REQUEST_BLOCK = b"\x82\x87\x84\x01" + bytes([len(HOST)]) + HOST.encode()




def h2_connect(port, tls):
    sock = tls.wrap_socket(socket.create_connection(("127.0.0.1", port), 10), server_hostname=HOST)
    if sock.selected_alpn_protocol() != "h2":
        raise RuntimeError("the gateway did not choose h2")
    return sock


class Reader:
    """Drives one connection in a thread (one thread per TLS socket: an SSL object
    is not for concurrent use): sends `first`, then reads frames, acknowledges
    SETTINGS, answers PINGs, counts response HEADERS, DATA bytes and resets, and
    never opens a window."""

    def __init__(self, sock, first):
        self.sock = sock
        self.first = first
        self.error = None
        self.headers = set()
        self.ended = set()
        self.data = 0
        self.resets = 0
        self.goaway = None
        self.closed = False
        self.stop = False
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        try:
            self.sock.sendall(self.first)
            self.read_frames()
        except OSError as e:  # ssl.SSLError is one
            self.error = e
            self.closed = True

    def read_frames(self):
        self.sock.settimeout(0.5)
        buf = b""
        while not self.stop:
            try:
                chunk = self.sock.recv(65536)
            except (socket.timeout, TimeoutError):
                continue
            if not chunk:
                self.closed = True
                return
            buf += chunk
            while len(buf) >= 9 and len(buf) >= 9 + int.from_bytes(buf[:3], "big"):
                size = int.from_bytes(buf[:3], "big")
                kind, flags = buf[3], buf[4]
                stream = int.from_bytes(buf[5:9], "big") & 0x7FFFFFFF
                payload = buf[9:9 + size]
                buf = buf[9 + size:]
                if kind == SETTINGS and not flags & ACK:
                    self.sock.sendall(h2_frame(SETTINGS, ACK, 0))
                elif kind == PING and not flags & ACK:
                    self.sock.sendall(h2_frame(PING, ACK, 0, payload))
                elif kind == HEADERS:
                    self.headers.add(stream)
                elif kind == DATA:
                    self.data += size
                elif kind == RST_STREAM:
                    self.resets += 1
                    self.ended.add(stream)
                elif kind == GOAWAY:
                    self.goaway = int.from_bytes(payload[4:8], "big")
                if kind in (DATA, HEADERS) and flags & END_STREAM:
                    self.ended.add(stream)

    def close(self):
        self.stop = True
        self.thread.join(2)
        try:
            self.sock.close()
        except OSError:
            pass


def stalled_connection(port, tls, window, streams):
    """A connection whose `streams` GETs are sent and whose frames are being read."""
    sock = h2_connect(port, tls)
    requests = b"".join(h2_frame(HEADERS, 0x5, 2 * i + 1, REQUEST_BLOCK) for i in range(streams))
    return Reader(sock, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_settings(window) + requests)


def full_download(port, tls, timeout=120):
    """One GET with every window wide open, read to its end; returns the body bytes."""
    sock = h2_connect(port, tls)
    reader = Reader(sock, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + h2_settings(MAX_WINDOW)
                    + h2_frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", MAX_WINDOW - 65535))
                    + h2_frame(HEADERS, 0x5, 1, REQUEST_BLOCK))
    deadline = time.time() + timeout
    while 1 not in reader.ended and not reader.closed and time.time() < deadline:
        time.sleep(0.02)
    reader.close()
    if 1 not in reader.ended or reader.resets:
        raise RuntimeError(f"the warm-up download did not end cleanly ({reader.data} bytes)")
    return reader.data


def downloads(port, runs, body_bytes):
    """Median speed (MiB/s) of `runs` plain downloads through the gateway with curl."""
    speeds = []
    for _ in range(runs):
        out = subprocess.run(
            ["curl", "-sk", "--http2", "-o", "/dev/null", "--max-time", "120",
             "--resolve", f"{HOST}:{port}:127.0.0.1",
             "-w", "%{http_code} %{size_download} %{speed_download}",
             f"https://{HOST}:{port}/"],
            check=True, capture_output=True, text=True).stdout.split()
        if out[0] != "200" or int(out[1]) != body_bytes:
            raise RuntimeError(f"bad download: {out}")
        speeds.append(float(out[2]) / 2**20)
    return statistics.median(speeds), speeds


# --- the run ----------------------------------------------------------------------

def write_config(work, port, upstream_port, cert, key, args):
    need = args.connections + 256
    return bench_config(
        work,
        f"listeners: [{{address: \"127.0.0.1:{port}\", tls: {{cert: {cert}, key: {key}}}}}]\n"
        f"limits: {{keepalive_timeout_ms: 600000, max_connections: {need}, "
        f"max_upstream_per_connection: {max(args.streams, 1)}, send_timeout_ms: 600000}}\n"
        f"vhosts: [{{name: bench, hosts: [\"*\"], upstreams: [\"127.0.0.1:{upstream_port}\"], "
        "read_timeout_ms: 600000, write_timeout_ms: 600000}]\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "release", "pingora-secgw"))
    ap.add_argument("--connections", type=int, default=2)
    ap.add_argument("--streams", type=int, default=80, help="GETs per connection")
    ap.add_argument("--window", type=int, default=0,
                    help="the client's SETTINGS_INITIAL_WINDOW_SIZE (0: never any DATA; "
                         "65535: the default window, never topped up)")
    ap.add_argument("--body-mib", type=float, default=10.0, help="the upstream's response size")
    ap.add_argument("--settle", type=float, default=5.0,
                    help="seconds to wait once every stream has its headers, and after closing")
    ap.add_argument("--timeout", type=float, default=120.0,
                    help="seconds to wait for every stream's response headers")
    ap.add_argument("--downloads", type=int, default=0,
                    help="then time this many un-stalled downloads with curl (median)")
    args = ap.parse_args()
    if not 0 <= args.window <= MAX_WINDOW:
        sys.exit("--window must be within 0..2^31-1")
    if args.downloads and not shutil.which("curl"):
        sys.exit("--downloads needs curl")

    need = 2 * args.connections * args.streams + args.connections + 512
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(need, hard), hard))

    body_bytes = int(args.body_mib * 2**20)
    work = tempfile.mkdtemp(prefix="secgw-stalled-")
    cert, key = self_signed(work)
    upstream, upstream_port, sent = start_upstream(body_bytes)
    port = free_port()
    conf = write_config(work, port, upstream_port, cert, key, args)
    log = open(os.path.join(work, "gw.log"), "w")
    proc = subprocess.Popen([args.bin, "-c", conf], stdout=log, stderr=log,
                            env={**os.environ, "RUST_LOG": "warn"})
    tls = insecure_tls(["h2"])
    readers = []
    try:
        wait_port(port, proc, "the gateway")
        full_download(port, tls)
        time.sleep(1)
        start = rss_kib(proc.pid)
        sent_start = sent.bytes

        total = args.connections * args.streams
        began = time.time()
        readers = [stalled_connection(port, tls, args.window, args.streams)
                   for _ in range(args.connections)]
        deadline = began + args.timeout
        while time.time() < deadline:
            if sum(len(r.headers) for r in readers) >= total:
                break
            if all(r.closed for r in readers) or proc.poll() is not None:
                break
            time.sleep(0.1)
        headers_s = time.time() - began
        time.sleep(args.settle)
        stalled = rss_kib(proc.pid)
        upstream_conns, kernel_queued = upstream_sockets(upstream_port)
        upstream_sent = sent.bytes - sent_start
        with_headers = sum(len(r.headers) for r in readers)
        ended = sum(len(r.ended) for r in readers)
        resets = sum(r.resets for r in readers)
        data = sum(r.data for r in readers)
        closed = sum(r.closed or r.goaway is not None for r in readers)
        errors = sorted({f"GOAWAY {r.goaway}" if r.goaway is not None else repr(r.error)
                         for r in readers if r.closed or r.goaway is not None})

        for r in readers:
            r.close()
        readers = []
        time.sleep(args.settle)
        after = rss_kib(proc.pid)
        after_conns, _ = upstream_sockets(upstream_port)

        speed = None
        if args.downloads:
            speed = downloads(port, args.downloads, body_bytes)
        if proc.poll() is not None:
            sys.exit("the gateway exited during the run")
    finally:
        for r in readers:
            r.close()
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        upstream.shutdown()
        upstream.server_close()

    stalled_streams = with_headers - ended
    print(f"binary: {args.bin}")
    print(f"{args.connections} connections x {args.streams} streams of {args.body_mib:g} MiB, "
          f"client window {args.window}, never opened")
    print(f"  streams with response headers:  {with_headers} of {total} ({headers_s:.1f} s)")
    print(f"  streams stalled (not ended):    {stalled_streams}"
          f"  (reset: {resets}, connections closed: {closed})")
    if errors:
        print(f"  closed by: {'; '.join(errors)}")
    print(f"  DATA bytes the client received: {data}")
    print(f"  RSS at start:                   {start / 1024:8.1f} MiB")
    print(f"  RSS with the stalled streams:   {stalled / 1024:8.1f} MiB")
    if stalled_streams > 0:
        print(f"  memory per stalled stream:      {(stalled - start) / stalled_streams:8.1f} KiB")
    print(f"  upstream connections open:      {upstream_conns}")
    # What the upstream sent, less what the kernel still queues on either end and
    # what reached the client: the body bytes the gateway has read and holds.
    held = upstream_sent - kernel_queued - data
    print(f"  body bytes upstream sent:       {upstream_sent}  (kernel queues: {kernel_queued})")
    if stalled_streams > 0:
        print(f"  body held in the gateway:       {held / 1024:8.1f} KiB in all, "
              f"{held / 1024 / stalled_streams:.1f} KiB per stalled stream")
    print(f"  RSS {args.settle:.0f} s after closing:        {after / 1024:8.1f} MiB "
          f"(upstream connections: {after_conns})")
    if speed:
        print(f"  un-stalled download, median of {args.downloads}: {speed[0]:8.1f} MiB/s "
              f"({', '.join(f'{s:.0f}' for s in speed[1])})")
    if with_headers < total:
        sys.exit(f"only {with_headers} of {total} streams got their response headers")


if __name__ == "__main__":
    main()
