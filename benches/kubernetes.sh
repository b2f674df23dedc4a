#!/usr/bin/env bash
# Kubernetes mode at scale (benches/kubernetes.py): the time from creating an Ingress
# to its first request served with N Ingresses (and Services, EndpointSlices)
# present, the memory of the watch caches against the same hosts from gw.yaml, and
# instructions per request under callgrind for an Ingress host against a gw.yaml one.
# With --kind httproute, the same for Gateway API HTTPRoutes attached to one Gateway
# (GatewayClass secgw) in place of Ingresses.
#
#   ./benches/kubernetes.sh [--kind ingress|httproute] [--ingresses N] [--trials K]
#                           [--seconds S] [--skip-instructions]
#
# Installs nginx, wrk, valgrind (benches/tools.sh), iproute2, curl and openssl
# (Debian) when missing, builds kube-apiserver and etcd (scripts/control-plane.sh)
# and the release gateway, then runs the script in a private network namespace
# (root, or CAP_SYS_ADMIN): the API refuses loopback addresses in EndpointSlices, so
# the upstream listens on 10.244.0.1 on that namespace's own `lo`, and the control
# plane, nginx and the gateways all live there, nothing on the host's network.
# About 100 s with the defaults (N=1000) once everything is built.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/deps.sh
./benches/tools.sh valgrind
# ip: the namespace's address; curl and openssl: scripts/control-plane.sh.
missing=()
command -v ip >/dev/null 2>&1 || missing+=(iproute2)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v unshare >/dev/null 2>&1 || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "benches/kubernetes.sh needs: ${missing[*]} (apt-get install ${missing[*]})" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
./scripts/control-plane.sh build
cargo build --release --bin pingora-secgw
# shellcheck disable=SC2016 # $@ is the inner shell's
exec unshare -n bash -c 'ip link set lo up && ip addr add 10.244.0.1/32 dev lo &&
  exec python3 benches/kubernetes.py "$@"' _ "$@"
