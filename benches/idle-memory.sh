#!/usr/bin/env bash
# Memory per idle keep-alive connection (plain, TLS, HTTP/2) and RSS after a burst
# (issues #12 and #29).
# Builds the release binary, then runs benches/idle-memory.py (loopback only,
# about 3.5 min with the defaults: three kinds × (2,000 connections, 60 s to settle)).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
cargo build --release --bin pingora-secgw
exec python3 benches/idle-memory.py "$@"
