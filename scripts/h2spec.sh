#!/usr/bin/env bash
# Builds h2spec, the HTTP/2 conformance suite, from its Go module into
# target/tools/h2spec (tests/h2spec.rs runs it). A second run finds it there.
set -euo pipefail
exec "$(dirname "$0")/go-tool.sh" h2spec github.com/summerwind/h2spec/cmd/h2spec v2.2.1+incompatible
