#!/usr/bin/env python3
"""What an access log costs, in CPU per request and latency, against nginx's.

In front of the nginx upstream of benches/load.py, with its settings: pingora-secgw
with the production policy and access logs off, then with JSON lines to a file;
nginx as a reverse proxy without and with `access_log FILE combined` (its default
format, unbuffered). wrk drives each in alternating rounds; CPU per request is the
proxy process's (all its threads, the log writer's included), from /proc. Instructions
per request are counted separately by `benches/instructions.py production json-log
combined-log` (benches/access-log.sh runs both). Loopback only; bounded by wrk.
"""
import os, sys, tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402

OFF, JSON, NGINX_OFF, NGINX_ON = "secgw, log off", "secgw, JSON log", "nginx, log off", "nginx, combined log"


def main():
    ap = load.rounds_parser(__doc__)
    args = ap.parse_args()
    workdir = tempfile.mkdtemp(prefix="secgw-access-log-")
    procs = []
    try:
        up_port = load.upstream(workdir, procs)
        targets = {}

        def gateway(name, extra):
            port = load.free_port()
            p = load.start_gateway(workdir, load.slug(name), port, up_port, "production", extra=extra)
            procs.append(p)
            load.wait_port(port, p, name)
            targets[name] = (port, p.pid)

        def nginx(name, log):
            port = load.free_port()
            proxy = load.start_nginx(workdir, load.slug(name), f"""
  upstream backend {{ server 127.0.0.1:{up_port}; keepalive 128; }}
  server {{
    listen 127.0.0.1:{port};
    {log}
    location / {{
      proxy_pass http://backend;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }}
  }}""")
            procs.append(proxy)
            load.wait_port(port, proxy, name)
            targets[name] = (port, load.worker_pid(proxy))

        gateway(OFF, "")
        gateway(JSON, f"access_log: {{enabled: true, format: json, path: {workdir}/secgw-access.log}}")
        nginx(NGINX_OFF, "access_log off;")
        nginx(NGINX_ON, f"access_log {workdir}/nginx-access.log combined;")
        print(f"{os.cpu_count()} cores; wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} alternating rounds\n")
        results = load.alternating_rounds(targets, args, width=22)
        med = load.print_medians(results, width=24)
        for name, path in [(JSON, "secgw-access.log"), (NGINX_ON, "nginx-access.log")]:
            with open(os.path.join(workdir, path), "rb") as f:
                lines = sum(1 for _ in f)
            print(f"{name}: {lines} lines written")

        def cost(a, b):
            r = load.paired_ratio(results, a, b)
            p50 = med[a]["p50"] / med[b]["p50"]
            return f"CPU/req {r:.3f} ({(r - 1) * 100:+.1f}%), p50 {p50:.2f}x"

        print("\nratios (CPU: median of per-round ratios)")
        print(f"secgw JSON log / log off:     {cost(JSON, OFF)}")
        print(f"nginx combined log / off:     {cost(NGINX_ON, NGINX_OFF)}")
    finally:
        load.stop(procs, workdir)


if __name__ == "__main__":
    main()
