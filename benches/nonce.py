#!/usr/bin/env python3
"""The cost of CSP nonces: a 50 KB HTML page through pingora-secgw with the
production policy, with and without `csp_nonce` (and `csp_nonce_styles`).

1. one upstream: nginx, one worker, serving the page as a static file;
2. in front of it: the gateway with `production` and with `production-nonce`
   (benches/policies), one worker thread each;
3. checks that the nonced gateway sends a nonce and the same page apart from
   the nonce attributes;
4. time to first byte and to the last byte, sequential requests, median;
5. wrk in alternating rounds: requests/s and CPU microseconds per request of
   the gateway process (from /proc), and the paired CPU ratio nonce / plain.
Loopback only; every run is bounded by wrk's duration.
"""
import os, re, socket, statistics, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the shared parts of the load benchmark)

PLAIN, NONCE = "production", "production + csp_nonce"


def page():
    """About 55 KB: inline scripts, same-origin scripts, a style, text and markup."""
    parts = ["<!doctype html><html><head><title>Catalogue</title>\n",
             "<link rel=\"stylesheet\" href=\"/site.css\"><style>body { margin: 0 }</style>\n"]
    for i in range(110):
        parts.append(
            f"<script>var item{i} = {{ id: {i}, name: \"item {i}\" }};</script>\n"
            f"<div class=\"card\" data-id=\"{i}\"><h2>Item {i}</h2><p>"
            + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 6
            + f"</p><script src=\"/js/card-{i}.js\" async></script></div>\n")
    parts.append("</body></html>\n")
    return "".join(parts).encode()


def fetch(port, path="/"):
    """One GET on a fresh connection: (seconds to the first byte, to the last, raw bytes)."""
    s = socket.create_connection(("127.0.0.1", port))
    req = f"GET {path} HTTP/1.1\r\nHost: bench.test\r\nX-Forwarded-Proto: https\r\nConnection: close\r\n\r\n"
    start = time.perf_counter()
    s.sendall(req.encode())
    first, chunks = None, []
    while True:
        data = s.recv(65536)
        if not data:
            break
        if first is None:
            first = time.perf_counter() - start
        chunks.append(data)
    total = time.perf_counter() - start
    s.close()
    return first, total, b"".join(chunks)


def dechunk(raw):
    head, _, body = raw.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" not in head.lower():
        return head, body
    out = b""
    while body:
        size, _, rest = body.partition(b"\r\n")
        n = int(size, 16)
        if n == 0:
            break
        out += rest[:n]
        body = rest[n + 2:]
    return head, out


def main():
    ap = load.rounds_parser(__doc__)
    ap.add_argument("--samples", type=int, default=300, help="sequential requests for the latency figures")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="secgw-nonce-")
    procs = []
    try:
        site = os.path.join(workdir, "site")
        os.makedirs(site)
        # nginx's worker reads the page as another user.
        os.chmod(workdir, 0o755)
        os.chmod(site, 0o755)
        body = page()
        with open(os.path.join(site, "index.html"), "wb") as f:
            f.write(body)
        os.chmod(os.path.join(site, "index.html"), 0o644)
        up = load.free_port()
        upstream = load.start_nginx(workdir, "upstream", f"""
  server {{
    listen 127.0.0.1:{up};
    location / {{ root {site}; }}
  }}""")
        procs.append(upstream)
        load.wait_port(up, upstream, "upstream")

        targets = {}
        for name, policy in [(PLAIN, "production"), (NONCE, "production-nonce")]:
            targets[name] = load.gateway(workdir, procs, name, up, policy)

        # The page arrives whole, and nonced only where the nonce version says.
        _, _, raw = fetch(targets[PLAIN][0])
        _, plain_body = dechunk(raw)
        if plain_body != body:
            sys.exit(f"the plain gateway changed the page:\n{raw[:600]!r}")
        _, _, raw = fetch(targets[NONCE][0])
        head, nonced = dechunk(raw)
        m = re.search(rb"'nonce-([A-Za-z0-9+/=]+)'", head)
        if not m:
            sys.exit("no nonce in the CSP")
        attr = b' nonce="' + m.group(1) + b'"'
        if nonced.replace(attr, b"") != body:
            sys.exit("the nonced page differs from the page beyond its nonce attributes")
        print(f"{len(body)} byte page, {nonced.count(attr)} nonce attributes per response")
        print(f"{os.cpu_count()} cores; wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} alternating rounds\n")

        print(f"latency, {args.samples} sequential requests on fresh connections (median)")
        for name, (port, _) in targets.items():
            firsts, totals = [], []
            for _ in range(args.samples):
                first, total, _ = fetch(port)
                firsts.append(first)
                totals.append(total)
            print(f"  {name:<24} first byte {statistics.median(firsts) * 1e6:>7.0f} us   last byte {statistics.median(totals) * 1e6:>7.0f} us")

        results = load.alternating_rounds(targets, args, width=24)
        load.print_medians(results, width=26)
        ratio = load.paired_ratio(results, NONCE, PLAIN)
        print(f"\nnonce / plain CPU per request (median of per-round ratios): {ratio:.3f}  (goal: at most 1.3)")
    finally:
        load.stop(procs, workdir)


if __name__ == "__main__":
    main()
