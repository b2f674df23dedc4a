#!/usr/bin/env bash
# Builds and runs the gateway on conf/gw.yaml (extra arguments go to pingora-secgw).
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
exec cargo run --release --bin pingora-secgw -- -c conf/gw.yaml "$@"
