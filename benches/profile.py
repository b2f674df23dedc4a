#!/usr/bin/env python3
"""Where a proxy's CPU goes: one target of benches/load.py under wrk, sampled by perf.

`benches/profile.py TARGET` with TARGET one of `production`, `empty`,
`production-nonce` and `production-nonce-uncached` (pingora-secgw with that policy) or
`bare` (bare Pingora, examples/bare-pingora.rs). It starts the nginx upstream (with
`--page`, serving benches/nonce.py's 55.8 KB page) and the target as load.py does, drives it with wrk for `--seconds`
while `perf record -e cpu-clock` samples the target's process (hardware counters are
not available here), and prints the hottest symbols by self time. `--callgraph` adds
DWARF call graphs. Build first: `cargo build --release --bin pingora-secgw --example
bare-pingora` (benches/load.sh does). Loopback only, bounded by wrk's duration.
"""
import argparse, os, subprocess, sys, tempfile, threading

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the same set-up as the load benchmark)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("target", choices=["production", "empty", "production-nonce",
                                       "production-nonce-uncached", "bare"])
    ap.add_argument("--page", action="store_true", help="the upstream serves the nonce benchmark's page")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--callgraph", action="store_true")
    ap.add_argument("--top", type=int, default=45)
    args = ap.parse_args()

    workdir = tempfile.mkdtemp(prefix="secgw-profile-")
    procs = []
    try:
        if args.page:
            import nonce  # noqa: E402  (its page)
            site = os.path.join(workdir, "site")
            os.makedirs(site)
            for d in (workdir, site):
                os.chmod(d, 0o755)
            with open(os.path.join(site, "index.html"), "wb") as f:
                f.write(nonce.page())
            os.chmod(os.path.join(site, "index.html"), 0o644)
            up_port = load.free_port()
            up = load.start_nginx(workdir, "upstream", f"""
  server {{
    listen 127.0.0.1:{up_port};
    location / {{ root {site}; }}
  }}""")
            procs.append(up)
            load.wait_port(up_port, up, "upstream")
        else:
            up_port = load.upstream(workdir, procs)
        port = load.free_port()
        if args.target == "bare":
            target = load.start_bare(workdir, port, up_port)
        else:
            target = load.start_gateway(workdir, args.target, port, up_port, args.target)
        procs.append(target)
        load.wait_port(port, target, args.target)

        data = os.path.join(workdir, "perf.data")
        record = ["perf", "record", "-e", "cpu-clock", "-F", "2000", "-o", data, "-p", str(target.pid)]
        if args.callgraph:
            record += ["--call-graph", "dwarf,16384"]
        perf = subprocess.Popen(record + ["--", "sleep", str(args.seconds)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        result = {}
        wrk = threading.Thread(target=lambda: result.update(
            load.run_wrk(port, args.seconds, args.connections, target.pid)))
        wrk.start()
        wrk.join()
        perf.wait()
        print(f"{args.target}: {result['rps']:.0f} req/s, {result['cpu']:.1f} us CPU/req\n")
        def report(*extra):
            cmd = ["perf", "report", "-i", data, "--stdio", "--no-children", *extra]
            out = subprocess.run(cmd, capture_output=True, text=True).stdout
            return [l[:160].rstrip() for l in out.splitlines() if l.strip() and not l.startswith("#")]

        print("by object:")
        print("\n".join(report("--sort", "dso", "-g", "none")))
        if args.callgraph:
            print("\n".join(report("--sort", "symbol", "--percent-limit", "0.5", "-G")))
        else:
            print(f"\nhottest symbols (self time, top {args.top}):")
            print("\n".join(report("--sort", "dso,symbol", "-g", "none")[:args.top]))
    finally:
        load.stop(procs, workdir)


if __name__ == "__main__":
    main()
