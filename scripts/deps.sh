#!/usr/bin/env bash
# Makes sure what the build needs beyond the Rust toolchain is installed; with the
# argument `test`, also what the test suite needs.
# Pingora builds zlib-ng with cmake. On Debian/Ubuntu as root (or with sudo) the
# missing packages are installed; elsewhere the script says what to install.
set -euo pipefail
cd "$(dirname "$0")/.."

need_pkgs=()
command -v cmake >/dev/null 2>&1 || need_pkgs+=(cmake)
command -v c++ >/dev/null 2>&1 || need_pkgs+=(g++)
if [ "${1:-}" = "test" ]; then
  # Real TLS and HTTP clients for the integration tests.
  command -v openssl >/dev/null 2>&1 || need_pkgs+=(openssl)
  command -v curl >/dev/null 2>&1 || need_pkgs+=(curl)
  # A real browser for the CSP tests (tests/browser.rs).
  command -v chromium >/dev/null 2>&1 || need_pkgs+=(chromium)
  # nginx, h2spec's second target (tests/h2spec.rs).
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need_pkgs+=(nginx)
  # ip: each Kubernetes test gives its network namespace an address on `lo`
  # (tests/common/cluster.rs); openssl makes the control plane's certificates.
  command -v ip >/dev/null 2>&1 || need_pkgs+=(iproute2)
fi

if [ ${#need_pkgs[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then
      if command -v sudo >/dev/null 2>&1; then sudo="sudo"; else
        echo "pingora-secgw needs: ${need_pkgs[*]}. Install them (apt-get install ${need_pkgs[*]}) and retry." >&2
        exit 1
      fi
    fi
    echo "Installing ${need_pkgs[*]} (needed to build Pingora)..." >&2
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_pkgs[@]}" >/dev/null
  else
    echo "pingora-secgw needs: ${need_pkgs[*]} (Pingora builds zlib-ng with cmake). Install them and retry." >&2
    exit 1
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "pingora-secgw needs the Rust toolchain (cargo): see https://rustup.rs" >&2
  exit 1
fi

# Prometheus and promtool from Debian's package (the metrics, alert and dashboard
# tests); helm (the chart's tests) and h2spec, the HTTP/2 conformance suite
# (tests/h2spec.rs), built from their Go modules; and kube-apiserver and etcd for the
# Kubernetes tests (tests/kubernetes.rs), built here because the tests run them in
# network namespaces without the module proxy.
if [ "${1:-}" = "test" ]; then
  ./scripts/prometheus.sh
  ./scripts/helm.sh
  ./scripts/h2spec.sh
  ./scripts/control-plane.sh build
fi
