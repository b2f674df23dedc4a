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

        targets[OFF] = load.gateway(workdir, procs, OFF, up_port, "production")
        targets[JSON] = load.gateway(workdir, procs, JSON, up_port, "production",
                                     extra=f"access_log: {{enabled: true, format: json, path: {workdir}/secgw-access.log}}")
        for name, log in [(NGINX_OFF, "access_log off;"), (NGINX_ON, f"access_log {workdir}/nginx-access.log combined;")]:
            targets[name] = load.nginx_proxy(workdir, procs, name, up_port, server=f"    {log}")
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
