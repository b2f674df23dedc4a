#!/usr/bin/env python3
"""Where the memory of an idle connection goes: heaptrack's allocation sites per connection.

Runs the gateway built with the system allocator (`--features system-allocator`)
under heaptrack, opens N idle keep-alive connections of each kind in `--kinds`
(as benches/idle-memory.py does), stops the gateway while they are open, and
prints every allocation site that holds memory for (nearly) every connection at
the peak, in bytes per connection, with the first frames that name it. Loopback
only; bounded by N.
"""
import argparse, importlib, os, re, signal, subprocess, sys, tempfile, time

from load import wait_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
idle = importlib.import_module("idle-memory")

# Frames that say nothing about who asked for the memory.
NOISE = re.compile(
    r"^(alloc::|core::|_R|<?alloc|bytes::|hashbrown|slab::|std::|__rust|malloc|"
    r"_<core|_<alloc|tokio::loom|<core)"
)


def sites(report, connections):
    """(bytes per connection, frames) of each peak site with about one allocation per connection."""
    found = []
    lines = report.splitlines()
    for i, line in enumerate(lines):
        m = re.match(r"^\s*([\d.]+)([KMG]?)B? consumed over (\d+) calls from:", line)
        if not m or int(m.group(3)) < connections * 0.9:
            continue
        size = float(m.group(1)) * {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}[m.group(2)]
        frames = []
        for frame in lines[i + 1:]:
            frame = frame.strip()
            if "consumed over" in frame or len(frames) == 2:
                break
            if frame.startswith(("at ", "in ")) or not frame or NOISE.match(frame):
                continue
            frame = re.sub(r"::h[0-9a-f]{16}$", "", frame)
            frame = frame.replace("$LT$", "<").replace("$GT$", ">").replace("$C$", ",")
            frame = frame.replace("$u7b$$u7b$closure$u7d$$u7d$", "{closure}").replace("$u20$", " ")
            frames.append(frame[:110])
        found.append((size / connections, frames))
    return sorted(found, key=lambda s: -s[0])


def gateway_pid(tracker, binary):
    """The process running `binary` among the descendants of `tracker`."""
    todo = [tracker]
    while todo:
        pid = todo.pop()
        try:
            if os.readlink(f"/proc/{pid}/exe") == os.path.realpath(binary):
                return pid
            with open(f"/proc/{pid}/task/{pid}/children") as f:
                todo.extend(int(c) for c in f.read().split())
        except FileNotFoundError:
            continue
    sys.exit("the gateway is not running under heaptrack")


def measure(args, kind):
    work = tempfile.mkdtemp(prefix="secgw-heap-")
    limits = f"limits: {{keepalive_timeout_ms: 600000, max_connections: {args.connections + 64}}}\n"
    conf, port, tls = idle.idle_gateway(work, kind, limits)
    out = os.path.join(work, "heap")
    log = open(os.path.join(work, "gw.log"), "w")
    # heaptrack's own process is a shell script: the gateway, its child, is
    # stopped by itself so that heaptrack writes its data.
    tracker = subprocess.Popen(["heaptrack", "-o", out, args.bin, "-c", conf],
                               stdout=log, stderr=log, env={**os.environ, "RUST_LOG": "warn"})
    try:
        wait_port(port, tracker, "the gateway")
        socks = [idle.connect(kind, port, tls) for _ in range(args.connections)]
        for s, read in socks:
            read(s)
        time.sleep(1)
        os.kill(gateway_pid(tracker.pid, args.bin), signal.SIGTERM)
        tracker.wait(timeout=120)
        for s, _ in socks:
            s.close()
    finally:
        if tracker.poll() is None:
            tracker.kill()
    report = subprocess.run(
        ["heaptrack_print", "-f", out + ".zst", "--print-peaks", "1", "--print-allocators", "0",
         "--print-temporary", "0", "--print-leaks", "0", "--peak-limit", "8",
         "--sub-peak-limit", "40"],
        capture_output=True, text=True, check=True).stdout
    found = sites(report, args.connections)
    print(f"{kind}: {args.connections} idle connections, "
          f"{sum(s for s, _ in found) / 1024:.1f} KiB per connection at these sites")
    for size, frames in found:
        print(f"  {size / 1024:6.2f} KiB  {frames[0] if frames else '?'}")
        for frame in frames[1:]:
            print(f"              {frame}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bin", default=os.path.join(ROOT, "target", "heap", "release", "pingora-secgw"))
    ap.add_argument("--connections", type=int, default=300)
    ap.add_argument("--kinds", default="plain,tls,h2")
    args = ap.parse_args()
    for kind in idle.kinds(args.kinds):
        measure(args, kind)


if __name__ == "__main__":
    main()
