#!/usr/bin/env bash
# CSP nonce benchmark: a 50 KB HTML page through pingora-secgw with and without
# csp_nonce (benches/nonce.py). Loopback only, bounded in time (about 2 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./benches/tools.sh
cargo build --release --bin pingora-secgw
exec python3 benches/nonce.py "$@"
