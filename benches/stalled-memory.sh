#!/usr/bin/env bash
# Memory per stalled HTTP/2 response stream: a client that never opens its flow-control
# window on 2 × 80 streams of a 10 MiB response (the bar: ≤ 96 KiB per stream).
# Builds the release binary, then runs benches/stalled-memory.py (loopback only, about
# 20 s with the defaults). E.g. `benches/stalled-memory.sh --window 65535`,
# `--connections 20 --streams 100`, `--downloads 5` (plain download speed as well).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo build --release --bin pingora-secgw
exec python3 benches/stalled-memory.py "$@"
