#!/usr/bin/env python3
"""What CSP reports cost the gateway: one gateway (one worker thread) with the
production policy collecting reports, driven by wrk in alternating rounds with

- proxied GETs to an nginx upstream (the scale);
- POSTs of Chromium's legacy report, answered by the collector (`204`);

and the gateway's CPU per request from /proc, so reports per second per core
is 1e6 / (CPU us per report). Loopback only; every run is bounded by wrk's
duration.
"""
import json, os, sys, tempfile, urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the shared parts of the load benchmark)

GET, REPORT = "proxied GET", "CSP report POST"
PATH = "/.well-known/csp-reports"

REPORT_BODY = json.dumps({"csp-report": {
    "document-uri": "https://bench.test/app/page?session=abc", "referrer": "https://bench.test/",
    "violated-directive": "script-src-elem", "effective-directive": "script-src-elem",
    "original-policy": "default-src 'self'; script-src 'self'; report-uri " + PATH,
    "disposition": "report", "blocked-uri": "inline", "line-number": 42, "column-number": 17,
    "source-file": "https://bench.test/app/page", "status-code": 200,
    "script-sample": "window.analytics = window.analytics || []"}}, separators=(",", ":"))


def wrk_script(workdir):
    path = os.path.join(workdir, "report.lua")
    with open(path, "w") as f:
        f.write(f"""wrk.method = "POST"
wrk.path = "{PATH}"
wrk.body = {json.dumps(REPORT_BODY)}
wrk.headers["Content-Type"] = "application/csp-report"
""")
    return path


def post_once(port):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{PATH}", data=REPORT_BODY.encode(),
                                 headers={"Host": "bench.test", "Content-Type": "application/csp-report"})
    with urllib.request.urlopen(req) as r:
        return r.status


def main():
    ap = load.rounds_parser(__doc__)
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="secgw-reports-")
    procs = []
    try:
        up = load.upstream(workdir, procs)
        port, pid = load.gateway(workdir, procs, "reports", up, "production-reports")
        if post_once(port) != 204:
            sys.exit("the collector did not take the report")

        targets = {GET: (port, pid), REPORT: (port, pid, wrk_script(workdir))}
        print(f"{os.cpu_count()} cores; wrk -t1 -c{args.connections} -d{args.seconds}s, {args.rounds} alternating rounds\n")
        results = load.alternating_rounds(targets, args, width=16)
        med = load.print_medians(results, width=18)
        cpu = med[REPORT]["cpu"]
        ratio = load.paired_ratio(results, REPORT, GET)
        print(f"\nreports per second per core: {1e6 / cpu:,.0f}  ({cpu:.1f} us CPU per report)")
        print(f"report / proxied GET CPU per request (median of per-round ratios): {ratio:.3f}")
    finally:
        load.stop(procs, workdir)


if __name__ == "__main__":
    main()
