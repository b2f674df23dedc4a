#!/usr/bin/env bash
# Takes prometheus and promtool from Debian's prometheus package into target/tools,
# without installing the package (no service, no user, nothing outside the clone):
# promtool checks the /metrics exposition and the alert rules (tests/metrics.rs,
# tests/alerts.rs), the Prometheus server scrapes a gateway for the dashboard test
# (tests/dashboard.rs). A second run finds them there.
set -euo pipefail
cd "$(dirname "$0")/.."
out=target/tools
if [ -x "$out/prometheus" ] && [ -x "$out/promtool" ]; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1 || ! command -v dpkg-deb >/dev/null 2>&1; then
  echo "The tests need Prometheus and promtool: put them at $out/prometheus and $out/promtool." >&2
  exit 1
fi
echo "Fetching prometheus and promtool from Debian's prometheus package into $out..." >&2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  (cd "$tmp" && apt-get download prometheus >/dev/null)
fi
dpkg-deb -x "$tmp"/prometheus_*.deb "$tmp/x"
mkdir -p "$out"
# Beside each other, renamed into place: a binary present is a binary complete.
for tool in prometheus promtool; do
  cp "$tmp/x/usr/bin/$tool" "$out/$tool.part"
  mv "$out/$tool.part" "$out/$tool"
done
