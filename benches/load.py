#!/usr/bin/env python3
"""pingora-secgw vs nginx, same upstream, same security headers, same load.

1. one upstream: nginx, one worker, `return 200` with a small body;
2. in front of it: bare Pingora (examples/bare-pingora.rs, a ProxyHttp that only
   returns the peer, same Pingora, allocator and release profile: the floor the gateway
   is measured against), pingora-secgw with the production policy (1 worker thread),
   pingora-secgw with the empty policy, and nginx as a reverse proxy (1 worker,
   upstream keepalive) with the same headers via proxy_hide_header + add_header always;
   as controls, pingora-secgw with the empty policy in front of a second upstream that
   sends those headers itself (the same response relayed, no policy applied), and
   nginx proxying without the headers (what the headers cost nginx);
3. checks that nginx and pingora-secgw send the same security headers;
4. drives each with wrk in alternating rounds and reports requests/s, p50/p99
   latency and CPU microseconds per request of the proxy process (from /proc).
Loopback only; every run is bounded by wrk's duration.
"""
import argparse, os, re, shutil, signal, socket, ssl, statistics, struct, subprocess, sys, tempfile, time, urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "pingora-secgw")
BARE_BIN = os.path.join(ROOT, "target", "release", "examples", "bare-pingora")
BARE = "bare Pingora"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CLK_TCK = os.sysconf("SC_CLK_TCK")
CARRIED = "empty, headers upstream"
NGINX_BARE = "nginx, no headers"
BENCH_HEADERS = {"X-Forwarded-Proto": "https"}  # HSTS is part of what is measured


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def self_signed(work, host="bench.test"):
    """A self-signed P-256 certificate for `host` in `work`: (cert, key) paths."""
    cert, key = os.path.join(work, "site.pem"), os.path.join(work, "site.key")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
         "-nodes", "-keyout", key, "-out", cert, "-days", "2", "-subj", f"/CN={host}",
         "-addext", f"subjectAltName=DNS:{host}"],
        check=True, capture_output=True)
    return cert, key


def insecure_tls(alpn):
    """A client TLS context for the benches' self-signed gateways, offering `alpn`."""
    tls = ssl.create_default_context()
    tls.check_hostname = False
    tls.verify_mode = ssl.CERT_NONE
    tls.set_alpn_protocols(alpn)
    return tls


def h2_frame(kind, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def bench_config(work, rest):
    """gw.yaml in `work` for a one-thread gateway that stops at once, then `rest`."""
    conf = os.path.join(work, "gw.yaml")
    with open(conf, "w") as f:
        f.write(
            f"threads: 1\nwork_stealing: false\npid_file: {work}/gw.pid\n"
            "grace_period_seconds: 0\ngraceful_shutdown_timeout_seconds: 1\n"
            f"upgrade_sock: {work}/up.sock\n{rest}"
        )
    return conf


def wait_port(port, proc, what):
    deadline = time.time() + 20
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"{what} did not listen on {port}")


def start_nginx(workdir, name, server_block):
    conf = os.path.join(workdir, f"{name}.conf")
    with open(conf, "w") as f:
        f.write(f"""
worker_processes 1;
daemon off;
pid {workdir}/{name}.pid;
error_log {workdir}/{name}.err warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  server_tokens off;
  client_body_temp_path {workdir}/{name}-body;
  proxy_temp_path {workdir}/{name}-proxy;
  fastcgi_temp_path {workdir}/{name}-fcgi;
  uwsgi_temp_path {workdir}/{name}-uwsgi;
  scgi_temp_path {workdir}/{name}-scgi;
  {server_block}
}}
""")
    return subprocess.Popen([NGINX, "-c", conf, "-p", workdir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def slug(name):
    """A target's name as a file name."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower())


def worker_pid(master):
    """nginx does its work in the worker, a child of the master."""
    for _ in range(100):
        kids = subprocess.run(["pgrep", "-P", str(master.pid)], capture_output=True, text=True).stdout.split()
        if kids:
            return int(kids[0])
        time.sleep(0.05)
    sys.exit("nginx worker not found")


def start_gateway(workdir, name, port, upstream, policy, wrapper=(), extra=""):
    """`wrapper`: a command to run the gateway under (valgrind, say); `extra`:
    more top-level gw.yaml keys."""
    conf = os.path.join(workdir, f"{name}.yaml")
    with open(conf, "w") as f:
        f.write(f"""
threads: 1
# One worker: a non-stealing runtime saves the cross-thread machinery (-17% CPU/req here).
work_stealing: false
pid_file: {workdir}/{name}.pid
upgrade_sock: {workdir}/{name}.sock
upstream_keepalive_pool_size: 128
listeners: [{{address: "127.0.0.1:{port}"}}]
trusted_proxies: ["127.0.0.1"]
policy_files: {ROOT}/benches/policies
vhosts:
  - name: bench
    hosts: ["*"]
    upstreams: ["127.0.0.1:{upstream}"]
    policy: {policy}
{extra}
""")
    env = dict(os.environ, RUST_LOG="error")
    return subprocess.Popen([*wrapper, BIN, "-c", conf], env=env, stdout=subprocess.DEVNULL, stderr=open(os.path.join(workdir, f"{name}.log"), "w"))


def upstream(workdir, procs, name="upstream", headers=""):
    """An nginx upstream answering `200 hello from upstream` (with `headers`, nginx
    directives), added to `procs`; returns its port."""
    port = free_port()
    proc = start_nginx(workdir, slug(name), f"""
  server {{
    listen 127.0.0.1:{port};
    location / {{
{headers}
      return 200 "hello from upstream\\n";
    }}
  }}""")
    procs.append(proc)
    wait_port(port, proc, name)
    return port


def gateway(workdir, procs, name, upstream_port, policy, extra=""):
    """pingora-secgw (start_gateway) on a free port, added to `procs` once it listens;
    returns its port and pid."""
    port = free_port()
    proc = start_gateway(workdir, slug(name), port, upstream_port, policy, extra=extra)
    procs.append(proc)
    wait_port(port, proc, name)
    return port, proc.pid


def nginx_proxy(workdir, procs, name, upstream_port, server="", location=""):
    """nginx as a reverse proxy to the upstream on `upstream_port` (kept-alive
    connections), with more directives in its `server` and its `location /`, added to
    `procs`; returns its port and its worker's pid."""
    port = free_port()
    proc = start_nginx(workdir, slug(name), f"""
  upstream backend {{ server 127.0.0.1:{upstream_port}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port};
{server}
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
{location}
    }}
  }}""")
    procs.append(proc)
    wait_port(port, proc, name)
    return port, worker_pid(proc)


def start_bare(workdir, port, upstream_port, wrapper=()):
    """Bare Pingora (examples/bare-pingora.rs) on `port` in front of the upstream."""
    return subprocess.Popen([*wrapper, BARE_BIN, f"127.0.0.1:{port}", f"127.0.0.1:{upstream_port}"],
                            env=dict(os.environ, RUST_LOG="error"), stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(workdir, "bare.log"), "w"))


def fetch_headers(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}/", headers=dict(BENCH_HEADERS, Host="bench.test"))
    with urllib.request.urlopen(req) as r:
        return [(k, v) for k, v in r.getheaders()]


# Headers that are not the policy's: framing and the like, and X-Request-Id, which the
# gateway writes on every response with a value of its own (docs/operations/access-logs.md).
NOT_POLICY = {"date", "content-length", "connection", "content-type", "server", "keep-alive", "transfer-encoding",
              "x-request-id"}


def security_headers(headers):
    return sorted((k.lower(), v) for k, v in headers if k.lower() not in NOT_POLICY)


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def to_us(text):
    m = re.match(r"([\d.]+)(us|ms|s)", text)
    value, unit = float(m.group(1)), m.group(2)
    return value * {"us": 1, "ms": 1000, "s": 1_000_000}[unit]


def run_wrk(port, seconds, connections, pid, script=None):
    """`script`: a wrk Lua script for requests other than GET /."""
    before = cpu_ticks(pid)
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    if script:
        cmd += ["-s", script]
    for k, v in BENCH_HEADERS.items():
        cmd += ["-H", f"{k}: {v}"]
    cmd += ["-H", "Host: bench.test", f"http://127.0.0.1:{port}/"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30).stdout
    after = cpu_ticks(pid)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    if errors:
        sys.exit(f"wrk saw errors against port {port}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    try:
        # Anchored: the Stdev column above also ends in `%` (for example `82.99%`).
        p50 = to_us(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
        p99 = to_us(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    except AttributeError:
        sys.exit(f"unexpected wrk output against port {port}:\n{out}")
    cpu_us = (after - before) * 1_000_000 / CLK_TCK / requests
    return dict(rps=rps, p50=p50, p99=p99, cpu=cpu_us)


def alternating_rounds(targets, args, width):
    """wrk on each target, (port, pid) or (port, pid, wrk script), in turn, the order
    reversed every other round, so that each round's targets run back to back:
    {name: [run_wrk result per round]}."""
    results = {name: [] for name in targets}
    order = list(targets)
    for r in range(args.rounds):
        for name in order if r % 2 == 0 else reversed(order):
            port, pid, *script = targets[name]
            res = run_wrk(port, args.seconds, args.connections, pid, *script)
            results[name].append(res)
            print(f"round {r + 1} {name:<{width}} {res['rps']:>9.0f} req/s  p50 {res['p50']:>7.0f} us  p99 {res['p99']:>7.0f} us  {res['cpu']:>6.1f} us CPU/req")
    return results


def print_medians(results, width):
    """Prints and returns each target's medians over the rounds."""
    med = {name: {k: statistics.median(x[k] for x in rs) for k in rs[0]} for name, rs in results.items()}
    print("\nmedians")
    print(f"{'':<{width}}{'req/s':>9}{'p50 us':>9}{'p99 us':>9}{'CPU us/req':>12}")
    for name, m in med.items():
        print(f"{name:<{width}}{m['rps']:>9.0f}{m['p50']:>9.0f}{m['p99']:>9.0f}{m['cpu']:>12.1f}")
    return med


def paired_ratio(results, a, b):
    """CPU per request of `a` over `b`, the median of per-round ratios: the targets of
    a round run back to back, so pairing them cancels most of the machine's drift."""
    return statistics.median(x["cpu"] / y["cpu"] for x, y in zip(results[a], results[b]))


def stop(procs, workdir):
    """Stops the servers a benchmark started and removes its directory."""
    for p in procs:
        p.send_signal(signal.SIGTERM)
    for p in procs:
        try:
            p.wait(10)
        except subprocess.TimeoutExpired:
            p.kill()
    shutil.rmtree(workdir, ignore_errors=True)


def rounds_parser(doc):
    """The options of a benchmark run in alternating wrk rounds."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=int, default=6)
    ap.add_argument("--connections", type=int, default=16)
    return ap


def main():
    ap = rounds_parser(__doc__)
    ap.add_argument("--bin", help="the pingora-secgw binary to measure (default: the release build)")
    args = ap.parse_args()
    if args.bin:
        global BIN
        BIN = os.path.abspath(args.bin)

    workdir = tempfile.mkdtemp(prefix="secgw-load-")
    procs = []
    try:
        def nginx_upstream(name, headers):
            return upstream(workdir, procs, name, headers)

        up_port = nginx_upstream("upstream", "")

        targets = {}

        for name, policy in [("pingora-secgw", "production"), ("pingora-secgw empty", "empty")]:
            targets[name] = gateway(workdir, procs, name, up_port, policy)

        bare_port = free_port()
        bare = start_bare(workdir, bare_port, up_port)
        procs.append(bare)
        wait_port(bare_port, bare, BARE)
        targets[BARE] = (bare_port, bare.pid)

        # nginx gets exactly the headers pingora-secgw sends.
        wanted = security_headers(fetch_headers(targets["pingora-secgw"][0]))
        hide = "\n".join(f"    proxy_hide_header {k};" for k, _ in wanted)
        add = "\n".join('    add_header {} "{}" always;'.format(k, v.replace('"', '\\"')) for k, v in wanted)

        # The control: the empty policy in front of an upstream that sends those headers
        # itself, so the gateway relays the same response without applying any policy:
        # what the headers cost Pingora when no policy is involved.
        targets[CARRIED] = gateway(workdir, procs, CARRIED, nginx_upstream("upstream with headers", add), "empty")
        if security_headers(fetch_headers(targets[CARRIED][0])) != wanted:
            sys.exit("the control does not carry the production policy's headers")

        targets["nginx"] = nginx_proxy(workdir, procs, "nginx", up_port, location=f"{hide}\n{add}")
        # What nginx itself pays for the same headers: the scale for the policy's cost.
        targets[NGINX_BARE] = nginx_proxy(workdir, procs, NGINX_BARE, up_port)

        got = security_headers(fetch_headers(targets["nginx"][0]))
        if got != wanted:
            sys.exit(f"nginx and pingora-secgw differ:\n nginx: {got}\n secgw: {wanted}")
        print(f"same {len(wanted)} security headers from both proxies: {', '.join(k for k, _ in wanted)}")
        print(f"{os.cpu_count()} cores; wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} alternating rounds\n")

        results = alternating_rounds(targets, args, width=26)
        med = print_medians(results, width=28)

        def paired(a, b):
            return paired_ratio(results, a, b)

        def cost(a, b):
            r = paired(a, b)
            return f"CPU/req {r:.3f} ({(r - 1) * 100:+.1f}%)"

        g, n = med["pingora-secgw"], med["nginx"]
        print("\nratios to bare Pingora (CPU: median of per-round ratios)")
        print(f"secgw production / bare Pingora: {cost('pingora-secgw', BARE)}")
        print(f"secgw empty / bare Pingora:      {cost('pingora-secgw empty', BARE)}")
        print("\nratios (CPU: median of per-round ratios)")
        print(f"pingora-secgw / nginx:        CPU/req {paired('pingora-secgw', 'nginx'):.2f}   req/s {g['rps'] / n['rps']:.2f}   p99 {g['p99'] / n['p99']:.2f}")
        print(f"production / empty policy:    {cost('pingora-secgw', 'pingora-secgw empty')}")
        print(f"relaying the same headers:    {cost(CARRIED, 'pingora-secgw empty')}  ({CARRIED} / empty)")
        print(f"injecting vs relaying them:   {cost('pingora-secgw', CARRIED)}  (production / {CARRIED})")
        print(f"nginx's cost for the headers: {cost('nginx', NGINX_BARE)}  (nginx / {NGINX_BARE})")
        print(f"bare Pingora / nginx:         CPU/req {paired(BARE, 'nginx'):.2f}")
    finally:
        stop(procs, workdir)


if __name__ == "__main__":
    main()
