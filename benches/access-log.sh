#!/usr/bin/env bash
# What access logs cost: instructions per request under callgrind (logs off, JSON and
# combined lines to a file), then CPU per request and latency against nginx's
# access_log in alternating wrk rounds (benches/access_log.py). Installs nginx, wrk and
# valgrind (Debian) when missing and builds the release binaries. Loopback only,
# about 3 minutes with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./benches/tools.sh valgrind
cargo build --release --bin pingora-secgw --example bare-pingora
python3 benches/instructions.py production json-log combined-log --seconds "${SECONDS_PER_TARGET:-8}"
exec python3 benches/access_log.py "$@"
