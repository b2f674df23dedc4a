#!/usr/bin/env bash
# Instructions per request under callgrind: bare Pingora, the empty and the production
# policy (benches/instructions.py). Installs nginx, wrk and valgrind (Debian) when
# missing, builds the release binaries, then runs the script. Loopback only, about 35 s
# with `--seconds 8`.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./benches/tools.sh valgrind
cargo build --release --bin pingora-secgw --example bare-pingora
exec python3 benches/instructions.py "$@"
