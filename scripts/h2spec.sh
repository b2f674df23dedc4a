#!/usr/bin/env bash
# Builds h2spec, the HTTP/2 conformance suite, from its Go module into
# target/tools/h2spec (tests/h2spec.rs runs it). A second run finds it there.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION=v2.2.1+incompatible
out=target/tools/h2spec
if [ -x "$out" ] && [ "$(cat "$out.version" 2>/dev/null)" = "$VERSION" ]; then
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Go (Debian's golang-go) to build h2spec..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
  else
    echo "Building h2spec needs Go (https://go.dev/dl/); or put an h2spec binary at $out." >&2
    exit 1
  fi
fi
echo "Building h2spec $VERSION into target/tools..." >&2
mkdir -p target/tools target/go
GOBIN="$PWD/target/tools" GOMODCACHE="$PWD/target/go/mod" GOCACHE="$PWD/target/go/cache" \
  GOFLAGS="-buildvcs=false -modcacherw" go install "github.com/summerwind/h2spec/cmd/h2spec@$VERSION"
echo "$VERSION" > "$out.version"
