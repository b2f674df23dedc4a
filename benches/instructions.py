#!/usr/bin/env python3
"""Instructions per request, counted by callgrind: repeatable where CPU time is not.

`benches/instructions.py [TARGET ...]` with TARGETs among `bare` (bare Pingora,
examples/bare-pingora.rs), `empty` and `production` (pingora-secgw with that policy),
all three by default, and `json-log`, `combined-log` (the production policy with
access logs in that format to a file; benches/access-log.sh). Each target runs under `valgrind --tool=callgrind` in front of the
nginx upstream of benches/load.py, with the load benchmark's settings. After a warm-up,
the counters are zeroed, wrk sends `--seconds` of requests over `--connections`
connections, and the counters are dumped: the instructions of those requests alone
(plus a background tick once a second) over wrk's request count. Prints each target's
instructions per request, the ratios to bare Pingora, and, with `--top`, each target's
costliest functions (inclusive, per request). Build first: `cargo build --release --bin
pingora-secgw --example bare-pingora` (benches/load.sh does). Loopback only, bounded by
wrk's duration. Kernel time is not counted: `benches/profile.py` shows it.
"""
import argparse, glob, os, re, shutil, subprocess, sys, tempfile, time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import load  # noqa: E402  (the same set-up as the load benchmark)

NAMES = {"bare": load.BARE, "empty": "pingora-secgw empty", "production": "pingora-secgw",
         "json-log": "production, JSON log", "combined-log": "production, combined log"}
DEFAULT = ["bare", "empty", "production"]
LOGS = {"json-log": "json", "combined-log": "combined"}


def wrk(port, seconds, connections):
    cmd = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s"]
    for k, v in load.BENCH_HEADERS.items():
        cmd += ["-H", f"{k}: {v}"]
    cmd += ["-H", "Host: bench.test", f"http://127.0.0.1:{port}/"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60).stdout
    if re.search(r"Non-2xx or 3xx responses|Socket errors", out):
        sys.exit(f"wrk saw errors against port {port}:\n{out}")
    return int(re.search(r"(\d+) requests in", out).group(1))


def control(pid, *args):
    subprocess.run(["callgrind_control", *args, str(pid)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def measure(workdir, target, up_port, args):
    """(instructions per request, callgrind output file) of one target."""
    out_dir = os.path.join(workdir, target)
    os.mkdir(out_dir)
    wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
               f"--callgrind-out-file={out_dir}/callgrind.out.%p"]
    port = load.free_port()
    if target == "bare":
        proc = load.start_bare(workdir, port, up_port, wrapper)
    elif target in LOGS:
        log = f"access_log: {{enabled: true, format: {LOGS[target]}, path: {out_dir}/access.log}}"
        proc = load.start_gateway(workdir, target, port, up_port, "production", wrapper, log)
    else:
        proc = load.start_gateway(workdir, target, port, up_port, target, wrapper)
    try:
        deadline = time.time() + 120
        while True:
            try:
                load.socket.create_connection(("127.0.0.1", port), 0.5).close()
                break
            except OSError:
                if proc.poll() is not None or time.time() > deadline:
                    sys.exit(f"{target} did not start under valgrind")
                time.sleep(0.2)
        control(proc.pid, "-i", "on")
        wrk(port, 2, args.connections)
        control(proc.pid, "-z")
        requests = wrk(port, args.seconds, args.connections)
        control(proc.pid, "-d")
    finally:
        # The counters are dumped: no graceful shutdown to wait for.
        proc.kill()
        proc.wait(60)
    dumps = [f for f in glob.glob(f"{out_dir}/callgrind.out.*") if re.search(r"\.\d+\.\d+$", f)]
    if len(dumps) != 1:
        sys.exit(f"{target}: expected one callgrind dump, found {dumps}")
    with open(dumps[0]) as f:
        total = int(re.search(r"^summary:\s+(\d+)", f.read(), re.M).group(1))
    return total / requests, dumps[0], requests


def top_functions(dump, requests, count):
    out = subprocess.run(["callgrind_annotate", "--inclusive=yes", f"--threshold=100", dump],
                         capture_output=True, text=True).stdout
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*([\d,]+)\s+\([^)]*\)\s+(?:\* )?(.*)", line)
        if m and "PROGRAM TOTALS" not in line and ("::" in m.group(2) or ":" in m.group(2)):
            rows.append((int(m.group(1).replace(",", "")) / requests, m.group(2)))
    return rows[:count]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("targets", nargs="*", metavar="TARGET", help=f"among {', '.join(NAMES)}")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--top", type=int, default=0, help="print each target's N costliest functions")
    ap.add_argument("--keep", metavar="DIR", help="copy the callgrind dumps into DIR")
    ap.add_argument("--bin", help="the pingora-secgw binary to measure (default: the release build)")
    args = ap.parse_args()
    if args.bin:
        load.BIN = os.path.abspath(args.bin)
    args.targets = args.targets or DEFAULT
    if unknown := set(args.targets) - set(NAMES):
        ap.error(f"unknown targets: {', '.join(sorted(unknown))}")
    workdir = tempfile.mkdtemp(prefix="secgw-instructions-")
    procs = []
    try:
        up_port = load.upstream(workdir, procs)
        per_request = {}
        for target in args.targets:
            ir, dump, requests = measure(workdir, target, up_port, args)
            per_request[target] = ir
            if args.keep:
                os.makedirs(args.keep, exist_ok=True)
                shutil.copy(dump, os.path.join(args.keep, f"callgrind.{target}.out"))
            print(f"{NAMES[target]:<22} {ir:>10,.0f} instructions/request ({requests} requests)")
            for cost, name in top_functions(dump, requests, args.top):
                print(f"    {cost:>10,.0f}  {name[:150]}")
        for target in LOGS:
            if target in per_request and "production" in per_request:
                ratio = per_request[target] / per_request["production"]
                print(f"{NAMES[target]} / logs off: {ratio:.4f} ({(ratio - 1) * 100:+.2f}%)")
        if "bare" in per_request:
            for target, ir in per_request.items():
                if target != "bare":
                    print(f"{NAMES[target]} / bare Pingora: {ir / per_request['bare']:.3f}")
    finally:
        load.stop(procs, workdir)


if __name__ == "__main__":
    main()
