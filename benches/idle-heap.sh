#!/usr/bin/env bash
# Where an idle connection's memory goes (issue #29, item 5): builds the gateway
# with the system allocator and symbols into target/heap (heaptrack cannot see
# inside mimalloc), then runs benches/idle-heap.py under heaptrack. Loopback only,
# about a minute after the build.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./benches/tools.sh heaptrack
CARGO_PROFILE_RELEASE_DEBUG=1 cargo build --release --features system-allocator \
  --target-dir target/heap --bin pingora-secgw
exec python3 benches/idle-heap.py "$@"
