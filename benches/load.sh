#!/usr/bin/env bash
# Load benchmark: pingora-secgw against bare Pingora (the floor) and nginx as a
# header-injecting reverse proxy.
# Installs nginx and wrk (Debian) when missing, builds the release binary, then runs
# benches/load.py. Loopback only, bounded in time (about 4 minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./benches/tools.sh
cargo build --release --bin pingora-secgw --example bare-pingora
exec python3 benches/load.py "$@"
