#!/usr/bin/env bash
# A real Kubernetes control plane for the integration tests: etcd and
# kube-apiserver on loopback, nothing else (no controller-manager, scheduler or
# kubelet, so objects are stored and served but nothing acts on them).
#
#   scripts/control-plane.sh build       builds the binaries into the cache, and fetches
#                                        the Gateway API CRDs there, if missing
#   scripts/control-plane.sh start DIR   builds what is missing, starts etcd and
#                                        kube-apiserver with their state under DIR,
#                                        installs the CRDs (below), waits for /readyz and
#                                        prints one line on stdout: KUBECONFIG=DIR/kubeconfig
#   scripts/control-plane.sh stop DIR    stops both and removes what start put in DIR
#   scripts/control-plane.sh gateway-api-crds
#                                        fetches the Gateway API CRDs into the cache, if
#                                        missing, and prints their directory on stdout
#   scripts/control-plane.sh kube-version
#                                        prints the Kubernetes version pinned in go.mod
#                                        (the Helm chart is rendered against it)
#
# `start` on a DIR that already holds state (ports, certificates, etcd data) reuses
# it and only starts what is not running: a test can kill kube-apiserver through
# DIR/kube-apiserver.pid and call `start DIR` again to get it back on the same
# port, behind the same kubeconfig.
#
# The binaries are built from the Go module in scripts/control-plane/ and cached
# outside the clone (CI runs in fresh clones), under
#   ${SECGW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pingora-secgw}/control-plane/k8s-<v>-etcd-<v>/
# keyed by the versions pinned in scripts/control-plane/go.mod.
#
# The CRDs start installs: the Gateway API's standard channel (GatewayClass, Gateway,
# HTTPRoute, ReferenceGrant, GRPCRoute, ...) at the release pinned below, and the
# project's own, k8s/crds/*.yaml, if it has any. `build` fetches the Gateway API
# module from the Go module proxy into the same cache, under
#   .../control-plane/gateway-api-<v>/   standard/*.yaml as released, json/<crd>.json
# so that `start` needs no network (the tests run it in network namespaces without
# the module proxy: scripts/deps.sh runs `build` beforehand).
#
# Only the KUBECONFIG line goes to stdout; progress goes to stderr, and the
# servers' output to DIR/etcd.log and DIR/kube-apiserver.log.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
module="$here/control-plane"

# The cache key follows the pin in go.mod, so bumping a version there builds anew
# instead of running stale binaries. Replace directives are skipped: only the
# require lines name the versions that are built.
module_version() {
  awk -v m="$1" '$1 == "replace" { next }
    { for (i = 1; i < NF; i++) if ($i == m && $(i + 1) ~ /^v[0-9]/) { print $(i + 1); exit } }' \
    "$module/go.mod"
}
k8s_version=$(module_version k8s.io/kubernetes)
etcd_version=$(module_version go.etcd.io/etcd/server/v3)
if [ -z "$k8s_version" ] || [ -z "$etcd_version" ]; then
  echo "control-plane: cannot read the k8s.io/kubernetes and etcd versions from $module/go.mod" >&2
  exit 1
fi
cache_dir="${SECGW_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/pingora-secgw}/control-plane"
bin_dir="$cache_dir/k8s-$k8s_version-etcd-$etcd_version"
etcd_bin="$bin_dir/etcd"
apiserver_bin="$bin_dir/kube-apiserver"

# The Gateway API release whose CRDs start installs: the one the Rust gateway-api
# crate (Cargo.toml) is generated from; bump both together. The module's hash is
# pinned too, so that what gets installed does not rest on the checksum database
# being consulted (GOSUMDB, GONOSUMDB and GOFLAGS=-insecure can turn it off).
gateway_api_version=v1.5.1
gateway_api_sum=h1:RqVRIlkhLhUO8wOHKTLnTJA6o/1un4po4/6M1nRzdd0=
gateway_api_dir="$cache_dir/gateway-api-$gateway_api_version"

log() { echo "control-plane: $*" >&2; }

# Seconds since a `date +%s%3N` timestamp, to a tenth.
elapsed() {
  local ms=$(($(date +%s%3N) - $1))
  echo "$((ms / 1000)).$((ms % 1000 / 100))"
}

have_binaries() { [ -x "$etcd_bin" ] && [ -x "$apiserver_bin" ]; }
# The directory is renamed into place complete, so that it exists is enough.
have_gateway_api() { [ -d "$gateway_api_dir/json" ]; }

ensure_go() {
  command -v go >/dev/null 2>&1 && return 0
  if [ -x /usr/local/go/bin/go ]; then
    PATH="/usr/local/go/bin:$PATH"
  elif [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    log "installing Go (Debian's golang-go) to build kube-apiserver and etcd..."
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq golang-go >/dev/null
  else
    log "building kube-apiserver and etcd, and fetching the Gateway API CRDs, needs Go (https://go.dev/dl/)"
    exit 1
  fi
}

build() {
  build_binaries
  fetch_gateway_api
}

build_binaries() {
  # The common case, binaries already cached, takes no lock at all.
  have_binaries && return 0
  mkdir -p "$bin_dir"
  # Parallel test processes all find the binaries missing on a cold cache; the
  # lock makes one of them build while the others wait, and they then find the
  # binaries in place instead of building a second time.
  exec 8>"$bin_dir/.lock"
  flock 8
  if have_binaries; then
    exec 8>&-
    return 0
  fi
  ensure_go
  log "building kube-apiserver $k8s_version and etcd $etcd_version into $bin_dir (takes minutes on a cold Go cache)..."
  local started tmp
  started=$(date +%s)
  # Built next to the final place so that `mv` is a rename on one filesystem: a
  # reader never sees a half-written binary.
  tmp=$(mktemp -d "$bin_dir/.build.XXXXXX")
  # -ldflags: a plain `go build` reports its version as v0.0.0-master; give
  # /version and --version the real one.
  local ldflags="-X k8s.io/component-base/version.gitVersion=$k8s_version"
  ldflags+=" -X k8s.io/component-base/version.gitMajor=$(echo "${k8s_version#v}" | cut -d. -f1)"
  ldflags+=" -X k8s.io/component-base/version.gitMinor=$(echo "${k8s_version#v}" | cut -d. -f2)"
  # GOTOOLCHAIN=auto lets an older Go fetch the toolchain go.mod asks for (some
  # distributions default to local); a value set by the caller wins.
  if ! (cd "$module" &&
    GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" go build -trimpath -buildvcs=false -ldflags "$ldflags" \
      -o "$tmp/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver &&
    GOTOOLCHAIN="${GOTOOLCHAIN:-auto}" go build -trimpath -buildvcs=false \
      -o "$tmp/etcd" ./etcd) >&2; then
    rm -rf "$tmp"
    log "build failed"
    exit 1
  fi
  mv -f "$tmp/etcd" "$etcd_bin"
  mv -f "$tmp/kube-apiserver" "$apiserver_bin"
  rmdir "$tmp"
  log "built kube-apiserver and etcd in $(($(date +%s) - started)) s"
  exec 8>&-
}

# The Gateway API module at the pinned release, from the Go module proxy (or the
# local module cache), into $gateway_api_dir: the standard channel's CRDs as
# released (standard/) and each CRD as the JSON document start posts (json/), so
# that start neither parses a megabyte of YAML nor needs the network. The
# channel's other objects (the ValidatingAdmissionPolicy that refuses experimental
# or older CRDs over these) are left out: they guard a real cluster's upgrades, and
# this control plane is made anew for each test.
fetch_gateway_api() {
  have_gateway_api && return 0
  mkdir -p "$cache_dir"
  # As in build_binaries: one fetches, parallel callers wait and find it in place.
  exec 7>"$cache_dir/.gateway-api-$gateway_api_version.lock"
  flock 7
  if have_gateway_api; then
    exec 7>&-
    return 0
  fi
  ensure_go
  log "fetching the Gateway API $gateway_api_version CRDs (standard channel) into $gateway_api_dir"
  local tmp info
  # Beside the final place, so that the rename below is atomic.
  tmp=$(mktemp -d "$cache_dir/.gateway-api.XXXXXX")
  chmod 755 "$tmp"
  # Run in the empty $tmp, with no go.work and no GOFLAGS (-mod=vendor would not
  # apply), so that no module of ours is read or changed: the module lands in the
  # Go module cache, read-only, and its files are copied from there.
  if ! info=$(cd "$tmp" && GOWORK=off GOFLAGS='' go mod download -json "sigs.k8s.io/gateway-api@$gateway_api_version"); then
    rm -rf "$tmp"
    log "go mod download sigs.k8s.io/gateway-api@$gateway_api_version failed (start needs it fetched: run \`$0 build\` where the Go module proxy is reachable):"
    echo "$info" >&2
    exit 1
  fi
  if ! python3 - "$info" "$gateway_api_sum" "$tmp" <<'PY' >&2; then
import json, os, sys, yaml

info, want_sum, out = json.loads(sys.argv[1]), sys.argv[2], sys.argv[3]
if info.get("Sum") != want_sum:
    sys.exit(f"sigs.k8s.io/gateway-api@{info['Version']}: hash {info.get('Sum')}, pinned {want_sum}")
src = os.path.join(info["Dir"], "config", "crd", "standard")
os.makedirs(f"{out}/standard")
os.makedirs(f"{out}/json")
loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
names = []
for file in sorted(os.listdir(src)):
    if not file.endswith(".yaml"):
        continue
    docs = [d for d in yaml.load_all(open(os.path.join(src, file)), Loader=loader) if d]
    crds = [d for d in docs if d["kind"] == "CustomResourceDefinition"]
    if not crds:
        print(f"control-plane: leaving out {file} ({', '.join(d['kind'] for d in docs)})")
        continue
    assert len(crds) == len(docs), f"{file}: CRDs mixed with other kinds"
    # Not shutil.copy: that would keep the module cache's read-only mode.
    with open(os.path.join(src, file), "rb") as f, open(f"{out}/standard/{file}", "wb") as g:
        g.write(f.read())
    for crd in crds:
        name = crd["metadata"]["name"]
        assert crd["metadata"]["annotations"]["gateway.networking.k8s.io/channel"] == "standard", name
        with open(f"{out}/json/{name}.json", "w") as f:
            json.dump(crd, f, separators=(",", ":"))
        names.append(name)
for kind in ["gatewayclasses", "gateways", "httproutes", "referencegrants"]:
    assert f"{kind}.gateway.networking.k8s.io" in names, f"no {kind} CRD in {src}"
print(f"control-plane: {len(names)} CRDs: {', '.join(n.split('.')[0] for n in names)}")
PY
    rm -rf "$tmp"
    log "taking the CRDs from sigs.k8s.io/gateway-api@$gateway_api_version failed"
    exit 1
  fi
  mv "$tmp" "$gateway_api_dir"
  exec 7>&-
}

# Whether the process in a pid file is alive and is ours. A zombie (killed but
# not reaped, e.g. under a PID 1 that does not reap) counts as dead, and a pid
# reused by an unrelated process is told apart by its command line naming DIR.
running() {
  local pidfile=$1 pid
  [ -s "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  case "$pid" in '' | *[!0-9]*) return 1 ;; esac
  kill -0 "$pid" 2>/dev/null || return 1
  if [ -r "/proc/$pid/stat" ]; then
    # The state is the field after the parenthesised command name.
    local state cmdline
    state=$(sed 's/.*) //' "/proc/$pid/stat" 2>/dev/null) || return 1
    [ "${state%% *}" != Z ] || return 1
    cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
    [[ "$cmdline" == *"$dir/"* ]] || return 1
  fi
  return 0
}

# Starts a server detached from this script: its own session (setsid) so that the
# caller's terminal or process group going away does not take it along, its
# output in a log file, and none of this script's descriptors, so that a caller
# reading our stdout to EOF is not kept waiting and the flock descriptors are not
# held by the server after we exit. The pid written is the server's own, since
# the shell execs it.
spawn() {
  local name=$1
  shift
  rm -f "$dir/$name.pid"
  # shellcheck disable=SC2016 # $$ and $@ are the inner shell's
  setsid nohup sh -c 'echo $$ >"$0"; exec "$@"' "$dir/$name.pid" "$@" \
    </dev/null >>"$dir/$name.log" 2>&1 8>&- 9>&- &
  # Not a job of this shell: no "Killed" notice when a failed start kills it.
  disown
  # Wait for the pid file so that the caller can use it right away.
  for _ in $(seq 50); do
    [ -s "$dir/$name.pid" ] && break
    sleep 0.1
  done
  started_here+=("$name")
}

fail_with_log() {
  local name=$1
  shift
  log "$*; last lines of $dir/$name.log:"
  tail -n 40 "$dir/$name.log" >&2 || true
  exit 1
}

free_ports() {
  # All three sockets are bound at once, so the ports differ from each other.
  python3 -c '
import socket
socks = [socket.socket() for _ in range(3)]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
'
}

make_pki() {
  local pki="$dir/pki"
  [ -f "$pki/.complete" ] && return 0
  log "generating certificates in $pki"
  rm -rf "$pki.tmp"
  mkdir -p "$pki.tmp"
  (
    cd "$pki.tmp"
    # An own config file, so the system's openssl.cnf (whose defaults differ
    # between distributions) adds nothing unexpected.
    cat >openssl.cnf <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
EOF
    # RSA keys in PKCS#8 ("BEGIN PRIVATE KEY"): what every client, kube-rs with
    # rustls included, reads.
    key() { openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null; }
    key ca.key
    openssl req -x509 -config openssl.cnf -extensions ca -key ca.key -days 3650 \
      -subj "/CN=pingora-secgw test CA" -out ca.crt
    signed() { # name subject extensions
      key "$1.key"
      openssl req -new -config openssl.cnf -key "$1.key" -subj "$2" -out "$1.csr"
      openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -set_serial "0x$(openssl rand -hex 16)" \
        -days 3650 -extfile openssl.cnf -extensions "$3" -out "$1.crt" 2>/dev/null
      rm "$1.csr"
    }
    signed apiserver "/CN=kube-apiserver" server
    signed admin "/O=system:masters/CN=admin" client
    # The key pair kube-apiserver signs and checks service-account tokens with.
    key sa.key
    openssl pkey -in sa.key -pubout -out sa.pub
    chmod 600 ./*.key
    touch .complete
  ) >&2
  mv "$pki.tmp" "$pki"
}

write_kubeconfig() {
  local pki="$dir/pki"
  b64() { base64 <"$1" | tr -d '\n'; }
  # Certificates inline: the file stands alone, whatever reads it and from where.
  cat >"$dir/kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: secgw-test
  cluster:
    server: https://127.0.0.1:$apiserver_port
    certificate-authority-data: $(b64 "$pki/ca.crt")
users:
- name: admin
  user:
    client-certificate-data: $(b64 "$pki/admin.crt")
    client-key-data: $(b64 "$pki/admin.key")
contexts:
- name: secgw-test
  context:
    cluster: secgw-test
    user: admin
    namespace: default
current-context: secgw-test
EOF
  chmod 600 "$dir/kubeconfig.tmp"
  # Renamed into place, so a test re-reading it during a restart never sees half a file.
  mv -f "$dir/kubeconfig.tmp" "$dir/kubeconfig"
}

api() { # curl arguments after the URL path
  local path=$1
  shift
  curl -sS --max-time 10 --cacert "$dir/pki/ca.crt" --cert "$dir/pki/admin.crt" --key "$dir/pki/admin.key" \
    "https://127.0.0.1:$apiserver_port$path" "$@"
}

# Each server is started unless running, then waited for. Started and then
# dead, it returns 1 and the caller looks at why (a port taken meanwhile is
# retried). Found running and then dead, it was shutting down when we looked (a
# test that just sent TERM through the pid file): it is started anew.
start_etcd() {
  local spawned=0 health deadline=$(($(date +%s) + 30))
  while :; do
    if ! running "$dir/etcd.pid"; then
      [ "$spawned" = 0 ] || return 1
      log "starting etcd on 127.0.0.1:$etcd_client_port"
      # --unsafe-no-fsync: test data need not survive a power cut, and fsync on a
      # busy CI disk is what makes etcd (and so every write through the API)
      # slow. A killed etcd loses nothing: its writes are in the page cache.
      spawn etcd "$etcd_bin" --name default --data-dir "$dir/etcd" \
        --listen-client-urls "http://127.0.0.1:$etcd_client_port" \
        --advertise-client-urls "http://127.0.0.1:$etcd_client_port" \
        --listen-peer-urls "http://127.0.0.1:$etcd_peer_port" \
        --initial-advertise-peer-urls "http://127.0.0.1:$etcd_peer_port" \
        --initial-cluster "default=http://127.0.0.1:$etcd_peer_port" \
        --unsafe-no-fsync
      spawned=1
      deadline=$(($(date +%s) + 30))
    fi
    health=$(curl -fsS --max-time 2 "http://127.0.0.1:$etcd_client_port/health" 2>/dev/null) || true
    [[ "$health" == *'"health":"true"'* ]] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || fail_with_log etcd "etcd not healthy after 30 s"
    sleep 0.2
  done
}

start_apiserver() {
  local spawned=0 pki="$dir/pki" deadline=$(($(date +%s) + 90))
  while :; do
    if ! running "$dir/kube-apiserver.pid"; then
      [ "$spawned" = 0 ] || return 1
      log "starting kube-apiserver on https://127.0.0.1:$apiserver_port"
      # --endpoint-reconciler-type=none: the default reconciler refuses a loopback
      #   advertise address, and with no kubelets there is nothing to reconcile.
      # --enable-priority-and-fairness=false: its bootstrap configuration only
      #   slows the start, and a test client needs no fairness.
      # --cert-dir: where it would write self-signed certificates (it does not,
      #   given ours), instead of /var/run/kubernetes.
      spawn kube-apiserver "$apiserver_bin" \
        --etcd-servers "http://127.0.0.1:$etcd_client_port" \
        --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$apiserver_port" \
        --endpoint-reconciler-type none \
        --service-cluster-ip-range 10.96.0.0/16 \
        --authorization-mode RBAC \
        --client-ca-file "$pki/ca.crt" \
        --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
        --service-account-issuer https://kubernetes.default.svc.cluster.local \
        --service-account-key-file "$pki/sa.pub" \
        --service-account-signing-key-file "$pki/sa.key" \
        --cert-dir "$pki" \
        --enable-priority-and-fairness=false \
        --profiling=false
      spawned=1
      deadline=$(($(date +%s) + 90))
    fi
    # /readyz, not /healthz: it also covers the post-start hooks (RBAC's bootstrap
    # roles, the default namespaces), which the tests rely on.
    [ "$(api /readyz -o /dev/null -w '%{http_code}' 2>/dev/null)" = 200 ] && return 0
    [ "$(date +%s)" -lt "$deadline" ] || fail_with_log kube-apiserver "kube-apiserver not ready after 90 s"
    sleep 0.25
  done
}

# The CRDs: the Gateway API's standard channel (JSON in the cache, see
# fetch_gateway_api) and the project's own, k8s/crds/*.yaml, if it has any. All are
# posted, then each is waited for until Established and until its resource answers
# a list, so that a test can use any of their kinds as soon as we print the
# kubeconfig. Posting again after a restart answers 409, which is fine: etcd kept
# them.
install_crds() {
  local json="$dir/crds" file name path code started
  started=$(date +%s%3N)
  rm -rf "$json"
  mkdir -p "$json"
  # One line per CRD: its JSON file, its name and the path that lists its objects
  # (storage version). The project's YAML is turned into JSON files here (a file
  # may hold several documents); files, not arguments, because a CRD's JSON can
  # pass the 128 KiB limit of one argument (HTTPRoute's is about 240 KiB).
  local crds
  crds=$(python3 - "$repo/k8s/crds" "$gateway_api_dir/json" "$json" <<'PY'
import glob, json, os, sys, yaml

project, gateway_api, out = sys.argv[1:]
files = sorted(glob.glob(f"{gateway_api}/*.json"))
for i, path in enumerate(sorted(glob.glob(f"{project}/*.yaml"))):
    for j, doc in enumerate(d for d in yaml.safe_load_all(open(path)) if d):
        files.append(f"{out}/{i}-{j}.json")
        with open(files[-1], "w") as f:
            json.dump(doc, f)
for path in files:
    crd = json.load(open(path))
    spec = crd["spec"]
    (version,) = [v["name"] for v in spec["versions"] if v.get("storage")]
    print(path, crd["metadata"]["name"], f"/apis/{spec['group']}/{version}/{spec['names']['plural']}")
PY
  )
  while read -r file name path; do
    code=$(api /apis/apiextensions.k8s.io/v1/customresourcedefinitions --max-time 60 -X POST \
      -H 'Content-Type: application/json' --data-binary "@$file" -o "$dir/crd-response.json" -w '%{http_code}') || true
    if [ "$code" != 201 ] && [ "$code" != 409 ]; then
      log "installing the CRD $name failed (HTTP $code):"
      cat "$dir/crd-response.json" >&2 || true
      exit 1
    fi
  done <<<"$crds"
  rm -rf "$json" "$dir/crd-response.json"
  # curl alone in the loop: a python3 per poll (100 ms through a pyenv shim) made
  # up most of the wait.
  local deadline=$(($(date +%s) + 60))
  while read -r file name path; do
    until [ "$(api "$path?limit=1" -o /dev/null -w '%{http_code}' 2>/dev/null)" = 200 ]; do
      [ "$(date +%s)" -lt "$deadline" ] || { log "CRD $name not served after 60 s"; exit 1; }
      sleep 0.1
    done
  done <<<"$crds"
  # kube-apiserver serves a CRD's resource only once the CRD is Established, so
  # this holds by now; checked all the same, once for all, since Established is
  # the condition clients are told to wait for.
  api /apis/apiextensions.k8s.io/v1/customresourcedefinitions | python3 -c '
import json, sys
established = {c["metadata"]["name"] for c in json.load(sys.stdin)["items"]
               if any(k["type"] == "Established" and k["status"] == "True" for k in c.get("status", {}).get("conditions", []))}
missing = [name for name in sys.argv[1].split() if name not in established]
sys.exit(f"control-plane: CRDs served but not Established: {missing}" if missing else 0)
' "$(cut -d' ' -f2 <<<"$crds")"
  log "installed $(grep -c . <<<"$crds") CRDs (Gateway API $gateway_api_version standard channel$([ -d "$repo/k8s/crds" ] && echo ", k8s/crds")) in $(elapsed "$started") s"
}

# Stops what start (this run) started if start fails, so a failed start leaves no
# stray servers behind; what an earlier start left running stays.
started_here=()
cleanup_failed_start() {
  local status=$? name
  [ "$status" -eq 0 ] && return 0
  for name in ${started_here[@]+"${started_here[@]}"}; do
    running "$dir/$name.pid" && kill -KILL "$(cat "$dir/$name.pid")" 2>/dev/null || true
    rm -f "$dir/$name.pid"
  done
  return "$status"
}

start() {
  local t0
  t0=$(date +%s%3N)
  build
  mkdir -p "$1"
  dir=$(cd "$1" && pwd)
  # One start or stop at a time on a DIR.
  exec 9>"$dir/.lock"
  flock 9
  trap cleanup_failed_start EXIT
  make_pki

  local fresh=0
  if [ -s "$dir/ports" ]; then
    # shellcheck source=/dev/null
    . "$dir/ports"
  else
    read -r etcd_client_port etcd_peer_port apiserver_port < <(free_ports)
    fresh=1
  fi
  save_ports() {
    printf 'etcd_client_port=%s\netcd_peer_port=%s\napiserver_port=%s\n' \
      "$etcd_client_port" "$etcd_peer_port" "$apiserver_port" >"$dir/ports.tmp"
    mv -f "$dir/ports.tmp" "$dir/ports"
  }
  save_ports

  # A port found free can be taken by someone else before the server binds it;
  # only then, and only for ports picked in this run, pick new ones and retry.
  # Ports from an earlier start are kept: the kubeconfig the tests hold names them.
  local attempt
  for attempt in 1 2 3; do
    start_etcd && break
    if [ "$fresh" = 1 ] && [ "$attempt" -lt 3 ] && grep -q 'address already in use' "$dir/etcd.log"; then
      log "etcd's port was taken meanwhile; picking others"
      read -r etcd_client_port etcd_peer_port _ < <(free_ports)
      save_ports
      rm -rf "$dir/etcd"
      continue
    fi
    fail_with_log etcd "etcd exited"
  done

  for attempt in 1 2 3; do
    write_kubeconfig
    start_apiserver && break
    if [ "$fresh" = 1 ] && [ "$attempt" -lt 3 ] && grep -q 'address already in use' "$dir/kube-apiserver.log"; then
      log "kube-apiserver's port was taken meanwhile; picking another"
      read -r apiserver_port _ _ < <(free_ports)
      save_ports
      continue
    fi
    fail_with_log kube-apiserver "kube-apiserver exited"
  done
  install_crds
  trap - EXIT
  exec 9>&-
  log "control plane ready at https://127.0.0.1:$apiserver_port in $(elapsed "$t0") s"
  echo "KUBECONFIG=$dir/kubeconfig"
}

stop_one() {
  local name=$1 pid
  running "$dir/$name.pid" || return 0
  pid=$(cat "$dir/$name.pid")
  kill -TERM "$pid" 2>/dev/null || return 0
  for _ in $(seq 100); do
    running "$dir/$name.pid" || return 0
    sleep 0.1
  done
  log "$name (pid $pid) still running 10 s after TERM; killing it"
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 50); do
    running "$dir/$name.pid" || return 0
    sleep 0.1
  done
}

stop() {
  [ -d "$1" ] || return 0
  dir=$(cd "$1" && pwd)
  exec 9>"$dir/.lock"
  flock 9
  # kube-apiserver first: stopped after etcd, it would spend its shutdown
  # retrying a gone etcd.
  stop_one kube-apiserver
  stop_one etcd
  rm -rf "$dir/etcd" "$dir/pki" "$dir/pki.tmp" "$dir/ports" "$dir/ports.tmp" \
    "$dir/kubeconfig" "$dir/kubeconfig.tmp" "$dir/crds" "$dir/crd-response.json" \
    "$dir/etcd.pid" "$dir/kube-apiserver.pid" "$dir/etcd.log" "$dir/kube-apiserver.log" "$dir/.lock"
  exec 9>&-
}

case "${1:-}" in
build) build ;;
gateway-api-crds) fetch_gateway_api && echo "$gateway_api_dir" ;;
kube-version) echo "$k8s_version" ;;
start) [ -n "${2:-}" ] || { echo "usage: $0 start DIR" >&2; exit 2; }; start "$2" ;;
stop) [ -n "${2:-}" ] || { echo "usage: $0 stop DIR" >&2; exit 2; }; stop "$2" ;;
*)
  echo "usage: $0 build | start DIR | stop DIR | gateway-api-crds | kube-version" >&2
  exit 2
  ;;
esac
