#!/usr/bin/env bash
# Memory per idle keep-alive connection and RSS after a burst (issue #12, item 6).
# Builds the release binary, then runs benches/idle-memory.py (loopback only,
# about 70 s with the defaults: 2,000 connections, 60 s to settle).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo build --release --bin pingora-secgw
exec python3 benches/idle-memory.py "$@"
