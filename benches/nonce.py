#!/usr/bin/env python3
"""The cost of CSP nonces: a 55.8 KB HTML page through pingora-secgw with the
production policy, without `csp_nonce`, with it and the template cache off
(every page through lol_html), and with it and the cache on (the default).

1. one upstream: nginx, one worker, serving the page as a static file, the same
   page gzip- and br-encoded (precompressed files), and a variant that differs
   on every response at a random one of 16 places (SSI prints the request id
   there);
2. in front of it: the gateway with `production`, `production-nonce-uncached`
   and `production-nonce` (benches/policies), one worker thread each;
3. checks that the nonced gateways send a nonce and the same page apart from
   the nonce attributes, and that the cached one serves the page from its
   template;
4. time to first byte and to the last byte, sequential requests, median;
5. wrk in alternating rounds: requests/s and CPU microseconds per request of
   the gateway process (from /proc), and the paired CPU ratios;
6. memory: 1,000 distinct URLs of the page through a fresh cached gateway, the
   cache's own count of its bytes and the process's resident memory.
Loopback only; every run is bounded by wrk's duration.
"""
import ctypes, gzip, os, re, socket, statistics, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the shared parts of the load benchmark)

PLAIN, UNCACHED, CACHED = "plain", "nonce, no cache", "nonce, cache"
POLICIES = {PLAIN: "production", UNCACHED: "production-nonce-uncached", CACHED: "production-nonce"}
# Where the upstream serves each body, and the wrk case that asks for it. `chunked`
# is the identity page sent chunked (through SSI, with nothing to include): a
# nonced response is chunked on HTTP/1.1, and this is plain proxying framed the same.
PATHS = {"identity": "/", "chunked": "/chunked", "gzip": "/gz", "br": "/br", "random": "/random"}
PAGES_FOR_MEMORY = 1000


def page(marks=False):
    """About 55 KB: inline scripts, same-origin scripts, a style, text and markup.
    `marks`: 16 places, one per hex digit, where SSI prints the request id when
    its first digit is that one, so each response differs at a random place."""
    parts = ["<!doctype html><html><head><title>Catalogue</title>\n",
             "<link rel=\"stylesheet\" href=\"/site.css\"><style>body { margin: 0 }</style>\n"]
    for i in range(110):
        if marks and i % 7 == 3 and i // 7 < 16:
            digit = "0123456789abcdef"[i // 7]
            parts.append(f'<!--# if expr="$request_id = /^{digit}/" --><i><!--# echo var="request_id" --></i><!--# endif -->')
        parts.append(
            f"<script>var item{i} = {{ id: {i}, name: \"item {i}\" }};</script>\n"
            f"<div class=\"card\" data-id=\"{i}\"><h2>Item {i}</h2><p>"
            + "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 6
            + f"</p><script src=\"/js/card-{i}.js\" async></script></div>\n")
    parts.append("</body></html>\n")
    return "".join(parts).encode()


def brotli(data):
    """br through the system's libbrotlienc (quality 5, window 22, as the tests use)."""
    lib = ctypes.CDLL("libbrotlienc.so.1")
    out = ctypes.create_string_buffer(len(data) + 1024)
    size = ctypes.c_size_t(len(out))
    ok = lib.BrotliEncoderCompress(5, 22, 0, ctypes.c_size_t(len(data)), data, ctypes.byref(size), out)
    if not ok:
        sys.exit("brotli encoding failed")
    return out.raw[:size.value]


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


def metric(port, name):
    """One unlabelled sample from the admin listener's /metrics."""
    _, _, raw = fetch(port, "/metrics")
    m = re.search(rb"^" + name.encode() + rb" (\S+)$", raw, re.M)
    return float(m.group(1)) if m else None


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))


def nonced(port, path, body):
    """A response's body, checked to be `body` with this response's nonce spliced in."""
    _, _, raw = fetch(port, path)
    head, got = dechunk(raw)
    m = re.search(rb"'nonce-([A-Za-z0-9+/=]+)'", head)
    if not m:
        sys.exit(f"no nonce in the CSP of {path}")
    attr = b' nonce="' + m.group(1) + b'"'
    if got.replace(attr, b"") != body:
        sys.exit(f"{path}: the nonced page differs from the page beyond its nonce attributes")
    return got.count(attr)


def main():
    ap = load.rounds_parser(__doc__)
    ap.add_argument("--samples", type=int, default=300, help="sequential requests for the latency figures")
    ap.add_argument("--cases", default=",".join(PATHS), help="which bodies to measure (default: all)")
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="secgw-nonce-")
    procs = []
    try:
        site = os.path.join(workdir, "site")
        os.makedirs(site)
        # nginx's worker reads the pages as another user.
        os.chmod(workdir, 0o755)
        os.chmod(site, 0o755)
        body = page()
        files = {"index.html": body, "index.html.gz": gzip.compress(body, 6),
                 "index.html.br": brotli(body), "random.html": page(marks=True)}
        for name, data in files.items():
            with open(os.path.join(site, name), "wb") as f:
                f.write(data)
            os.chmod(os.path.join(site, name), 0o644)
        encoded = "".join(f"""
    location = /{coding} {{
      types {{ }}
      default_type "text/html; charset=utf-8";
      add_header Content-Encoding {coding};
      alias {site}/index.html.{coding};
    }}""" for coding in ["gz", "br"]).replace("Content-Encoding gz;", "Content-Encoding gzip;")
        up = load.free_port()
        upstream = load.start_nginx(workdir, "upstream", f"""
  server {{
    listen 127.0.0.1:{up};
    location / {{ root {site}; }}
    location = /random {{ ssi on; default_type text/html; charset utf-8; alias {site}/random.html; }}
    location = /chunked {{ ssi on; default_type text/html; charset utf-8; alias {site}/index.html; }}{encoded}
  }}""")
        procs.append(upstream)
        load.wait_port(up, upstream, "upstream")

        gateways = {name: load.gateway(workdir, procs, name, up, policy) for name, policy in POLICIES.items()}

        _, _, raw = fetch(gateways[PLAIN][0])
        if dechunk(raw)[1] != body:
            sys.exit(f"the plain gateway changed the page:\n{raw[:600]!r}")
        for name in [UNCACHED, CACHED]:
            for path in ["/", "/gz", "/br", "/"]:
                count = nonced(gateways[name][0], path, body)
        # SSI ran: the random page differs per response, and both are chunked.
        bodies = [dechunk(fetch(gateways[PLAIN][0], p)[2]) for p in ["/random", "/random", "/chunked"]]
        if bodies[0][1] == bodies[1][1] or any(b"transfer-encoding: chunked" not in h.lower() for h, _ in bodies):
            sys.exit("the upstream's SSI pages are not what the benchmark needs")
        for name in [UNCACHED, CACHED]:
            _, _, raw = fetch(gateways[name][0], "/random")
            if b"'nonce-" not in raw.partition(b"\r\n\r\n")[0]:
                sys.exit(f"{name}: the random page got no nonce:\n{raw[:400]!r}")
        print(f"{len(body)} byte page, {count} nonce attributes per response; "
              f"{len(files['index.html.gz'])} bytes gzip, {len(files['index.html.br'])} br")
        print(f"{os.cpu_count()} cores; wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} alternating rounds\n")

        print(f"latency, {args.samples} sequential requests on fresh connections (median)")
        for name, (port, _) in gateways.items():
            firsts, totals = [], []
            for _ in range(args.samples):
                first, total, _ = fetch(port)
                firsts.append(first)
                totals.append(total)
            print(f"  {name:<24} first byte {statistics.median(firsts) * 1e6:>7.0f} us   last byte {statistics.median(totals) * 1e6:>7.0f} us")

        cases = args.cases.split(",")
        targets = {}
        for case, path in PATHS.items():
            if case not in cases:
                continue
            script = os.path.join(workdir, f"{case}.lua")
            with open(script, "w") as f:
                f.write(f'wrk.path = "{path}"\n')
            names = [PLAIN, UNCACHED, CACHED] if case != "random" else [UNCACHED, CACHED]
            for name in names:
                targets[f"{name} / {case}"] = (*gateways[name], script)
        results = load.alternating_rounds(targets, args, width=26)
        load.print_medians(results, width=28)
        print("\nCPU per request, median of per-round ratios")
        for case in cases:
            if case != "random":
                for name in [UNCACHED, CACHED]:
                    ratio = load.paired_ratio(results, f"{name} / {case}", f"{PLAIN} / {case}")
                    print(f"  {case:<9} {name:<16} / plain: {ratio:.3f}")
        if "chunked" in cases:
            ratio = load.paired_ratio(results, f"{CACHED} / identity", f"{PLAIN} / chunked")
            print(f"  identity  cache / plain of the page chunked: {ratio:.3f}")
        if "random" in cases:
            ratio = load.paired_ratio(results, f"{CACHED} / random", f"{UNCACHED} / random")
            print(f"  random    cache / no cache: {ratio:.3f}  (goal: at most 1.03)")
        print(f"  identity  cache / plain goal: at most 1.2")

        # Memory: a fresh cached gateway with an admin listener, 1,000 URLs.
        admin = load.free_port()
        port, pid = load.gateway(workdir, procs, "memory", up, "production-nonce",
                                 extra=f'admin: {{address: "127.0.0.1:{admin}"}}')
        load.wait_port(admin, procs[-1], "admin")
        fetch(port, "/?warm=1")
        before = rss_kib(pid)
        for i in range(PAGES_FOR_MEMORY):
            fetch(port, f"/?page={i}")
        held = metric(admin, "secgw_nonce_cache_bytes")
        templates = metric(admin, "secgw_nonce_cache_templates")
        grown = rss_kib(pid) - before
        print(f"\nmemory: {templates:.0f} templates, {held / 1e6:.1f} MB held by the cache "
              f"({held / templates:.0f} bytes per template); resident memory grew {grown / 1024:.1f} MiB "
              f"over {PAGES_FOR_MEMORY} pages")
    finally:
        load.stop(procs, workdir)


if __name__ == "__main__":
    main()
