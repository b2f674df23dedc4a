#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit and integration tests.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh test
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
  rustup component add rustfmt clippy
fi
cargo fmt --all -- --check
# No top-level module of src/ may reach, directly or through others, one that reaches it back.
python3 scripts/module-cycles.py --self-test
python3 scripts/module-cycles.py
cargo clippy --all-targets -- -D warnings
cargo test --lib --bins --tests
