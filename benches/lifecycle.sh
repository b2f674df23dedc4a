#!/usr/bin/env bash
# Zero-drop lifecycle benchmark: N graceful upgrades and N rolling-update steps
# (SIGTERM + restart behind a load balancer following /readyz) under steady load,
# loopback only, about 10 s per step. Prints requests sent, failed, refused.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
exec cargo bench --bench lifecycle -- "${1:-5}"
