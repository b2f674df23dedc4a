#!/usr/bin/env bash
# CSP report collector benchmark: reports per second per core through
# pingora-secgw, beside proxied GETs (benches/reports.py). Loopback only,
# bounded in time (about 2 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./benches/tools.sh
cargo build --release --bin pingora-secgw
exec python3 benches/reports.py "$@"
