#!/usr/bin/env bash
# Builds a Go tool from its module into target/tools/NAME, unless the version there is
# already VERSION:   scripts/go-tool.sh NAME MODULE/PATH/cmd/NAME VERSION
# (scripts/h2spec.sh and scripts/helm.sh). The module cache and build cache stay under
# target/go, so a second run builds nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
name=$1 package=$2 version=$3
out=target/tools/$name
if [ -x "$out" ] && [ "$(cat "$out.version" 2>/dev/null)" = "$version" ]; then
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "Installing Go (Debian's golang-go) to build $name..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
  else
    echo "Building $name needs Go (https://go.dev/dl/); or put a $name $version binary at $out." >&2
    exit 1
  fi
fi
echo "Building $name $version into target/tools..." >&2
mkdir -p target/tools target/go
GOBIN="$PWD/target/tools" GOMODCACHE="$PWD/target/go/mod" GOCACHE="$PWD/target/go/cache" \
  GOFLAGS="-buildvcs=false -modcacherw" go install "$package@$version"
echo "$version" > "$out.version"
