#!/usr/bin/env python3
"""Kubernetes mode at scale: how fast a new Ingress (or, with `--kind httproute`, a
new Gateway API HTTPRoute) is served, what the watch caches cost in memory, and
whether the request path costs anything more.

Run through `./benches/kubernetes.sh [ARGS]`, which builds kube-apiserver, etcd and
the release gateway, then runs this script in a private network namespace (the API
refuses loopback addresses in EndpointSlices, so the upstream listens on 10.244.0.1,
an address of that namespace's own `lo`; see tests/common/cluster.rs). Run directly,
it needs that namespace already (it checks for 10.244.0.1).

1. **Time to serve a new Ingress**, with `--ingresses` N Ingresses (and N Services
   and N EndpointSlices) present: starts the control plane (scripts/control-plane.sh)
   and an nginx upstream on 10.244.0.1, creates the objects through the API (one
   TLS connection, the admin certificate of the kubeconfig), starts the release
   gateway in Kubernetes mode and times its start to `/readyz` 200; then, in each of
   `--trials` K trials, creates one more Ingress and polls `GET /` with its host
   every 2 ms until 200: the time from just before the create request is sent to
   the first 200. Prints min / median / p90 / max and the gateway's compile log
   lines ("... compiled in X ms") of each trial.
2. **Memory** (VmRSS after a 2 s settle) of (a) that gateway, (b) the same binary in
   Kubernetes mode watching an empty namespace, (c) a gateway with the same N+1
   hosts as gw.yaml vhosts and no Kubernetes mode; a-c is what the watch caches and
   the controller cost, a-b what the N objects cost in all.
3. **Instructions per request** (callgrind, as benches/instructions.py; skipped with
   `--skip-instructions`): (x) a gw.yaml vhost `bench.test`, (y) the Kubernetes-mode
   gateway serving `bench.test` from its Ingress with the N others present, both
   with the production policy in front of the same upstream; prints y/x.

`--kind httproute` measures the same with the Gateway API instead of Ingresses: the
GatewayClass `secgw` (controllerName secgw.io/gateway-controller), one Gateway
`bench` in the bench's namespace with one HTTP listener on the port of the
gateway's gw.yaml listener (`allowedRoutes.namespaces.from: Same`), and N+1
HTTPRoutes attached to it (`h{i}.bench.test` to Service `s{i}`, and `bench.test`),
in place of the IngressClass and the Ingresses; a trial creates one more HTTPRoute,
the status waited for is each HTTPRoute's `status.parents` entry of the gateway's
controller, and (c) is the same hosts as gw.yaml vhosts the way the HTTPRoutes are
translated (src/cluster/gateway.rs: a vhost per hostname answering 404 itself, one
`prefix: /` route, and the catch-all `*` answering 404). `--ingresses N` is N in
both kinds.

Every wait has a timeout, and every process (gateways, nginx, etcd and
kube-apiserver) is stopped on the way out, errors included. About 100 s with the
defaults (N=1000, K=20, `--seconds 8`) on 2 cores: 15 s creating the objects, 30 s
of trials, 40 s under valgrind.
"""
import argparse, base64, glob, http.client, json, math, os, re, shutil, signal, socket, ssl
import statistics, subprocess, sys, tempfile, time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import load  # noqa: E402
from instructions import control, wrk  # noqa: E402

ROOT = load.ROOT
BIN = load.BIN
CONTROL_PLANE = os.path.join(ROOT, "scripts", "control-plane.sh")
UPSTREAM_HOST = "10.244.0.1"  # on `lo` of the private network namespace
NS = "bench"
EMPTY_NS = "empty"
CLASS = "secgw"  # the IngressClass and the GatewayClass
GATEWAY = "bench"  # the Gateway (in NS) the HTTPRoutes attach to
COMPILED = "serving the cluster's objects"
# The controller's lines (compiles, status writes) and errors, nothing per request.
QUIET_LOG = "error,pingora_secgw::controller=info"


def fail(message):
    # SystemExit: the finally blocks still stop everything.
    sys.exit(f"kubernetes.py: {message}")


class Api:
    """kube-apiserver over one reused TLS connection, as the kubeconfig's admin."""

    def __init__(self, kubeconfig, workdir):
        with open(kubeconfig) as f:
            text = f.read()
        server = re.search(r"server: https://([^:\s]+):(\d+)", text)
        if not server:
            fail(f"no server in {kubeconfig}")
        paths = {}
        for field, name in [("certificate-authority-data", "ca.crt"),
                            ("client-certificate-data", "admin.crt"),
                            ("client-key-data", "admin.key")]:
            m = re.search(rf"{field}: (\S+)", text)
            if not m:
                fail(f"no {field} in {kubeconfig}")
            paths[name] = os.path.join(workdir, name)
            with open(os.open(paths[name], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "wb") as out:
                out.write(base64.b64decode(m.group(1)))
        self.tls = ssl.create_default_context(cafile=paths["ca.crt"])
        self.tls.load_cert_chain(paths["admin.crt"], paths["admin.key"])
        self.host, self.port = server.group(1), int(server.group(2))
        self.conn = None

    def request(self, method, path, body=None, ok=(200, 201)):
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}
        for attempt in range(2):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection(self.host, self.port, context=self.tls, timeout=30)
            try:
                self.conn.request(method, path, body=data, headers=headers)
                r = self.conn.getresponse()
                payload = r.read()
                break
            except (http.client.HTTPException, OSError) as e:
                # A kept-alive connection the server closed: once more on a new one.
                self.conn.close()
                self.conn = None
                if attempt:
                    fail(f"{method} {path}: {e}")
        # A create retried after its first attempt went through answers 409.
        if r.status not in ok and not (attempt and r.status == 409 and method == "POST"):
            fail(f"{method} {path}: HTTP {r.status}: {payload[:500]!r}")
        return json.loads(payload) if payload else None

    def create(self, path, obj):
        return self.request("POST", path, obj, ok=(201,))

    def close(self):
        if self.conn:
            self.conn.close()


def ingress_class():
    return {"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass", "metadata": {"name": CLASS},
            "spec": {"controller": "secgw.io/ingress-controller"}}


def namespace(name):
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}


def service(name):
    return {"apiVersion": "v1", "kind": "Service", "metadata": {"name": name, "namespace": NS},
            "spec": {"ports": [{"name": "http", "port": 80, "protocol": "TCP"}]}}


def endpoint_slice(service_name, port):
    return {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
            "metadata": {"name": f"{service_name}-{port}", "namespace": NS,
                         "labels": {"kubernetes.io/service-name": service_name}},
            "addressType": "IPv4",
            "ports": [{"name": "http", "port": port, "protocol": "TCP"}],
            "endpoints": [{"addresses": [UPSTREAM_HOST],
                           "conditions": {"ready": True, "serving": True, "terminating": False}}]}


def ingress(name, host, service_name):
    return {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "metadata": {"name": name, "namespace": NS},
            "spec": {"ingressClassName": CLASS, "rules": [{"host": host, "http": {"paths": [
                {"path": "/", "pathType": "Prefix",
                 "backend": {"service": {"name": service_name, "port": {"name": "http"}}}}]}}]}}


def gateway_class():
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": CLASS},
            "spec": {"controllerName": "secgw.io/gateway-controller"}}


def gateway(port):
    """The Gateway: one HTTP listener on `port`, the port of the Kubernetes-mode
    gateway's gw.yaml listener (a listener is served on the gw.yaml listener of the
    same port), taking HTTPRoutes of its own namespace."""
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
            "metadata": {"name": GATEWAY, "namespace": NS},
            "spec": {"gatewayClassName": CLASS, "listeners": [
                {"name": "http", "port": port, "protocol": "HTTP",
                 "allowedRoutes": {"namespaces": {"from": "Same"}}}]}}


def http_route(name, host, service_name):
    # Port 80: the Service's port (service()).
    return {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
            "metadata": {"name": name, "namespace": NS},
            "spec": {"parentRefs": [{"name": GATEWAY}], "hostnames": [host],
                     "rules": [{"backendRefs": [{"name": service_name, "port": 80}]}]}}


INGRESSES = f"/apis/networking.k8s.io/v1/namespaces/{NS}/ingresses"
GATEWAY_CLASSES = "/apis/gateway.networking.k8s.io/v1/gatewayclasses"
GATEWAYS = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/gateways"
HTTPROUTES = f"/apis/gateway.networking.k8s.io/v1/namespaces/{NS}/httproutes"
CONTROLLER = "secgw.io/gateway-controller"


class Kind:
    """What differs between `--kind ingress` and `--kind httproute`: the route
    object's name, collection and shape."""

    def __init__(self, name):
        self.name = name
        self.httproute = name == "httproute"
        self.object = "HTTPRoute" if self.httproute else "Ingress"
        self.objects = "HTTPRoutes" if self.httproute else "Ingresses"
        self.path = HTTPROUTES if self.httproute else INGRESSES

    def route(self, name, host, service_name):
        return (http_route if self.httproute else ingress)(name, host, service_name)


def free_port(host="127.0.0.1"):
    s = socket.socket()
    s.bind((host, 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_tcp(host, port, proc, what, timeout):
    deadline = time.time() + timeout
    while True:
        if proc.poll() is not None:
            fail(f"{what} exited with {proc.returncode}")
        try:
            socket.create_connection((host, port), 0.5).close()
            return
        except OSError:
            if time.time() > deadline:
                fail(f"{what} did not listen on {host}:{port} within {timeout} s")
            time.sleep(0.02)


def http_status(port, path, host="localhost", timeout=2.0):
    """The status of one GET on a new connection, or None when it fails."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"Host": host})
        r = conn.getresponse()
        r.read()
        return r.status
    except (http.client.HTTPException, OSError):
        return None
    finally:
        conn.close()


class Gateway:
    """One pingora-secgw process with its own gw.yaml, log and ports."""

    def __init__(self, workdir, name, rest, wrapper=(), rust_log="info", port=None):
        self.name, self.workdir = name, workdir
        # `port`: the one a Gateway object's listener names (--kind httproute).
        self.port, self.admin = port or free_port(), free_port()
        self.conf = os.path.join(workdir, f"{name}.yaml")
        self.log_path = os.path.join(workdir, f"{name}.log")
        with open(self.conf, "w") as f:
            # The same settings for every gateway of this bench; those of
            # benches/load.py's gateways, with the admin listener.
            f.write(f"""threads: 1
work_stealing: false
pid_file: {workdir}/{name}.pid
upgrade_sock: {workdir}/{name}.sock
grace_period_seconds: 0
graceful_shutdown_timeout_seconds: 1
upstream_keepalive_pool_size: 128
listeners: [{{address: "127.0.0.1:{self.port}"}}]
admin: {{address: "127.0.0.1:{self.admin}"}}
trusted_proxies: ["127.0.0.1"]
policy_files: {ROOT}/benches/policies
{rest}""")
        self.started = time.monotonic()
        self.proc = subprocess.Popen([*wrapper, BIN, "-c", self.conf], env=dict(os.environ, RUST_LOG=rust_log),
                                     stdout=subprocess.DEVNULL, stderr=open(self.log_path, "w"))

    @property
    def pid(self):
        return self.proc.pid

    def log(self):
        with open(self.log_path, errors="replace") as f:
            return f.read()

    def log_size(self):
        return os.path.getsize(self.log_path)

    def log_since(self, offset):
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            return f.read().decode(errors="replace")

    def wait_ready(self, timeout):
        """Waits for /readyz 200; returns the seconds since the process started."""
        wait_tcp("127.0.0.1", self.admin, self.proc, self.name, timeout)
        deadline = self.started + timeout
        while True:
            if http_status(self.admin, "/readyz") == 200:
                return time.monotonic() - self.started
            if self.proc.poll() is not None:
                fail(f"{self.name} exited with {self.proc.returncode}; log:\n{self.log()[-3000:]}")
            if time.monotonic() > deadline:
                fail(f"{self.name}: /readyz not 200 within {timeout} s; log:\n{self.log()[-3000:]}")
            time.sleep(0.01)

    def wait_quiet(self, quiet, timeout):
        """Waits until the log has not grown for `quiet` seconds (no compile, no
        status write); returns the seconds waited."""
        started = time.monotonic()
        size, since = self.log_size(), started
        while True:
            now = time.monotonic()
            if self.log_size() != size:
                size, since = self.log_size(), now
            elif now - since >= quiet:
                return now - started
            if now - started > timeout:
                fail(f"{self.name}: its log still grows after {timeout} s:\n{self.log()[-2000:]}")
            if self.proc.poll() is not None:
                fail(f"{self.name} exited with {self.proc.returncode}")
            time.sleep(0.05)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()  # nothing to drain: the bench is over for this one
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            pass


def kubernetes_yaml(kubeconfig, namespaces):
    return f"""vhosts: []
kubernetes:
  enabled: true
  kubeconfig: {kubeconfig}
  ingress_class: {CLASS}
  gateway_class: {CLASS}
  namespaces: [{namespaces}]
  default_policy: production
  status_address: 192.0.2.1
"""


def vhost_yaml(name, host, up_port, body="no route for this path"):
    """The gw.yaml vhost an Ingress rule `host: HOST, path: /, pathType: Prefix` is
    translated into (src/cluster/ingress.rs): a vhost answering 404 itself and one
    `prefix: /` route to the upstream, so that (a)/(c) and (x)/(y) compare the same
    plan and the same routes. An HTTPRoute `hostnames: [HOST]` with one rule and no
    matches becomes the same, with the body "no route for this request"
    (src/cluster/gateway.rs), its route carrying the backendRef's share
    (`rules.backends`), which gw.yaml writes as the route's upstreams."""
    return (f"  - name: {name}\n    hosts: [\"{host}\"]\n    policy: production\n"
            f"    respond: {{status: 404, body: \"{body}\\n\"}}\n"
            f"    routes: [{{prefix: /, upstreams: [\"{UPSTREAM_HOST}:{up_port}\"]}}]\n")


def vhosts_yaml(kind, hosts, up_port):
    """gw.yaml's `vhosts:` for `hosts` ((name, host) pairs) as `kind` has them
    translated: with the Gateway API, each name a listener and a route share, and
    the catch-all vhost answering 404 that a served Gateway adds."""
    if not kind.httproute:
        return "vhosts:\n" + "".join(vhost_yaml(name, host, up_port) for name, host in hosts)
    body = "no route for this request"
    return ("vhosts:\n" + "".join(vhost_yaml(name, host, up_port, body) for name, host in hosts)
            + f"  - name: catch-all\n    hosts: [\"*\"]\n    policy: production\n"
            f"    respond: {{status: 404, body: \"{body}\\n\"}}\n")


def compile_ms(text):
    return [float(m) for m in re.findall(COMPILED + r".*?compiled in ([\d.]+) ms", text)]


def compile_lines(text):
    return [line for line in text.splitlines() if COMPILED in line]


def percentile(values, p):
    """Nearest rank."""
    s = sorted(values)
    return s[max(0, math.ceil(p / 100 * len(s)) - 1)]


def rss_after_settle(gw, host_header):
    # The same few requests to each, so that each has served (some) requests.
    for _ in range(20):
        http_status(gw.port, "/", host_header)
    time.sleep(2)
    return load.rss_kib(gw.pid)


def start_control_plane(cpdir):
    t0 = time.monotonic()
    try:
        out = subprocess.run([CONTROL_PLANE, "start", cpdir], capture_output=True, text=True, timeout=300)
    except subprocess.TimeoutExpired:
        fail("scripts/control-plane.sh start took more than 300 s")
    m = re.search(r"^KUBECONFIG=(.+)$", out.stdout, re.M)
    if out.returncode != 0 or not m:
        fail(f"scripts/control-plane.sh start failed ({out.returncode}):\n{out.stdout}\n{out.stderr[-3000:]}")
    return m.group(1), time.monotonic() - t0


def stop_control_plane(cpdir):
    try:
        subprocess.run([CONTROL_PLANE, "stop", cpdir], timeout=60, stdout=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        print(f"scripts/control-plane.sh stop {cpdir} took more than 60 s", file=sys.stderr)


def start_upstream(workdir):
    """nginx answering 200 on 10.244.0.1: the one upstream of every Service."""
    port = free_port(UPSTREAM_HOST)
    proc = load.start_nginx(workdir, "upstream", f"""
  server {{
    listen {UPSTREAM_HOST}:{port};
    keepalive_requests 1000000;
    location / {{
      return 200 "hello from upstream\\n";
    }}
  }}""")
    wait_tcp(UPSTREAM_HOST, port, proc, "nginx", 20)
    return port, proc


def create_objects(api, kind, n, up_port, listen_port):
    t0 = time.monotonic()
    if kind.httproute:
        api.create(GATEWAY_CLASSES, gateway_class())
    else:
        api.create("/apis/networking.k8s.io/v1/ingressclasses", ingress_class())
    api.create("/api/v1/namespaces", namespace(NS))
    api.create("/api/v1/namespaces", namespace(EMPTY_NS))
    for i in range(n):
        api.create(f"/api/v1/namespaces/{NS}/services", service(f"s{i}"))
    for i in range(n):
        api.create(f"/apis/discovery.k8s.io/v1/namespaces/{NS}/endpointslices", endpoint_slice(f"s{i}", up_port))
    if kind.httproute:
        api.create(GATEWAYS, gateway(listen_port))
    for i in range(n):
        api.create(kind.path, kind.route(f"i{i}", f"h{i}.bench.test", f"s{i}"))
    api.create(kind.path, kind.route("bench", "bench.test", "s0"))
    return time.monotonic() - t0


def our_parent(route):
    """The `status.parents` entry the gateway's controller wrote, or None."""
    parents = (route.get("status") or {}).get("parents") or []
    return next((p for p in parents if p.get("controllerName") == CONTROLLER), None)


def condition(conditions, kind):
    return next((c for c in conditions or [] if c.get("type") == kind), {})


def with_status(api, kind):
    """How many of the namespace's Ingresses (HTTPRoutes) carry a status, and how
    many there are; for HTTPRoutes, the first entry whose `Accepted` or
    `ResolvedRefs` is not True too (None when there is none)."""
    items = api.request("GET", kind.path)["items"]
    if not kind.httproute:
        done = sum(1 for i in items if i.get("status", {}).get("loadBalancer", {}).get("ingress"))
        return done, len(items), None
    parents = [(i["metadata"]["name"], our_parent(i)) for i in items]
    done = [(name, p) for name, p in parents if p]
    refused = next(((name, p) for name, p in done
                    if any(condition(p.get("conditions"), c).get("status") != "True"
                           for c in ("Accepted", "ResolvedRefs"))), None)
    return len(done), len(items), refused


def gateway_summary(api):
    """The Gateway's conditions and its listeners' attached routes, as one line."""
    status = api.request("GET", f"{GATEWAYS}/{GATEWAY}").get("status") or {}
    conds = ", ".join(f"{c['type']}={c['status']}" for c in status.get("conditions") or [])
    listeners = "; ".join(
        f"listener {l['name']}: {l.get('attachedRoutes')} attached routes, "
        + ", ".join(f"{c['type']}={c['status']}" for c in l.get("conditions") or [])
        for l in status.get("listeners") or [])
    return f"Gateway {NS}/{GATEWAY}: {conds or 'no conditions'}; {listeners or 'no listener status'}"


def time_to_serve(api, kind, gw, k):
    """Creates Ingress (HTTPRoute) new{k}, to Service s0, there since the start;
    seconds from just before the create request is sent to the first 200 for its
    host, the create request's own round trip, and the gateway's log meanwhile."""
    host = f"new{k}.bench.test"
    offset = gw.log_size()
    t0 = time.monotonic()
    api.create(kind.path, kind.route(f"new{k}", host, "s0"))
    posted = time.monotonic() - t0
    conn = None
    statuses = {}
    deadline = t0 + 30
    while True:
        if conn is None:
            conn = http.client.HTTPConnection("127.0.0.1", gw.port, timeout=2)
        try:
            conn.request("GET", "/", headers={"Host": host})
            r = conn.getresponse()
            r.read()
            status = r.status
            if r.getheader("connection", "").lower() == "close":
                conn.close()
                conn = None
        except (http.client.HTTPException, OSError):
            conn.close()
            conn = None
            status = None
        if status == 200:
            served = time.monotonic() - t0
            break
        statuses[status] = statuses.get(status, 0) + 1
        if time.monotonic() > deadline:
            fail(f"{host} not served 30 s after its {kind.object} was created (answers: {statuses});"
                 f" log:\n{gw.log_since(offset)[-3000:]}")
        time.sleep(0.002)
    if conn:
        conn.close()
    return served, posted, statuses, offset


def callgrind_measure(workdir, name, rest, args, ready_timeout, port=None):
    """(instructions per request, requests) of a gateway under callgrind, as
    benches/instructions.py measures them."""
    out_dir = os.path.join(workdir, f"callgrind-{name}")
    os.mkdir(out_dir)
    wrapper = ["valgrind", "--tool=callgrind", "--instr-atstart=no",
               f"--callgrind-out-file={out_dir}/callgrind.out.%p"]
    gw = Gateway(workdir, name, rest, wrapper, rust_log=QUIET_LOG, port=port)
    try:
        ready = gw.wait_ready(ready_timeout)
        # A Kubernetes-mode gateway may still be compiling: quiet first.
        gw.wait_quiet(3, 300)
        if http_status(gw.port, "/", "bench.test", timeout=10) != 200:
            fail(f"{name}: GET / for bench.test is not 200; log:\n{gw.log()[-3000:]}")
        control(gw.pid, "-i", "on")
        wrk(gw.port, 2, args.connections)
        control(gw.pid, "-z")
        offset = gw.log_size()
        requests = wrk(gw.port, args.seconds, args.connections)
        control(gw.pid, "-d")
        log_during = gw.log_since(offset)
    finally:
        gw.stop()
    dumps = [f for f in glob.glob(f"{out_dir}/callgrind.out.*") if re.search(r"\.\d+\.\d+$", f)]
    if len(dumps) != 1:
        fail(f"{name}: expected one callgrind dump, found {dumps}")
    with open(dumps[0]) as f:
        total = int(re.search(r"^summary:\s+(\d+)", f.read(), re.M).group(1))
    # Anything the controller did while counting (it should have nothing to do).
    return total / requests, requests, ready, len(compile_lines(log_during))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kind", choices=["ingress", "httproute"], default="ingress",
                    help="the routes: Ingresses, or Gateway API HTTPRoutes attached to one Gateway")
    ap.add_argument("--ingresses", type=int, default=1000, metavar="N",
                    help="N Ingresses, or N HTTPRoutes with --kind httproute (and N Services, N EndpointSlices)")
    ap.add_argument("--trials", type=int, default=20, metavar="K")
    ap.add_argument("--seconds", type=int, default=8, help="wrk's duration under callgrind")
    ap.add_argument("--connections", type=int, default=16, help="wrk's connections under callgrind")
    ap.add_argument("--skip-instructions", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, gw.yaml files)")
    args = ap.parse_args()
    if args.ingresses < 1 or args.trials < 1:
        ap.error("--ingresses and --trials are at least 1")
    try:
        socket.socket().bind((UPSTREAM_HOST, 0))
    except OSError:
        fail(f"{UPSTREAM_HOST} is not an address here: run benches/kubernetes.sh (a private network namespace)")
    if not os.access(BIN, os.X_OK):
        fail(f"no {BIN}: cargo build --release --bin pingora-secgw")

    # SIGTERM and SIGHUP end the run through the finally blocks, as Ctrl-C does.
    def terminate(signum, _frame):
        sys.exit(f"kubernetes.py: signal {signum}")
    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGHUP, terminate)

    n = args.ingresses
    kind = Kind(args.kind)
    what, whats = kind.object, kind.objects
    workdir = tempfile.mkdtemp(prefix="secgw-kubernetes-")
    cpdir = os.path.join(workdir, "control-plane")
    gateways, nginx, api = [], None, None

    def start(name, rest, **kw):
        gw = Gateway(workdir, name, rest, **kw)
        gateways.append(gw)
        return gw

    def stop(gw):
        gw.stop()
        gateways.remove(gw)

    run_started = time.monotonic()
    try:
        kubeconfig, cp_seconds = start_control_plane(cpdir)
        print(f"control plane (etcd, kube-apiserver) started in {cp_seconds:.1f} s")
        up_port, nginx = start_upstream(workdir)
        api = Api(kubeconfig, workdir)
        # The port of the Kubernetes-mode gateway's listener, which the Gateway's
        # listener names (--kind httproute); picked now, the Gateway being created
        # before the gateway starts.
        listen_port = free_port()
        created = create_objects(api, kind, n, up_port, listen_port)
        objects = 3 * n + 1 + (1 if kind.httproute else 0)
        print(f"created {n} Services, {n} EndpointSlices, {n + 1} {whats}"
              + (f" (attached to Gateway {NS}/{GATEWAY}, listener port {listen_port})" if kind.httproute else "")
              + f" in {created:.1f} s ({created / objects * 1000:.2f} ms per object, one connection)")

        # 1. Time to serve a new Ingress (HTTPRoute).
        print(f"\n1. time from creating an {what} to its first request served ({n + 1} {whats} present)")
        k8s = start("kubernetes", kubernetes_yaml(kubeconfig, NS), port=listen_port)
        ready = k8s.wait_ready(120)
        rss_ready = load.rss_kib(k8s.pid)
        print(f"gateway start -> /readyz 200: {ready:.2f} s (VmRSS then {rss_ready / 1024:.1f} MiB)")
        for line in compile_lines(k8s.log())[:1]:
            print(f"  first compile: {line}")
        # It then writes each Ingress's (HTTPRoute's) status; each write comes back
        # through the watch. The trials start once that is over.
        t_status = time.monotonic()
        deadline = t_status + 300
        while True:
            done, total, refused = with_status(api, kind)
            if done == total and not refused:
                break
            if time.monotonic() > deadline:
                if refused:
                    fail(f"HTTPRoute {refused[0]} still not accepted 300 s after ready: "
                         f"{json.dumps(refused[1])[:1500]}")
                fail(f"only {done} of {total} {whats} have a status 300 s after ready;"
                     f" log:\n{k8s.log()[-3000:]}")
            time.sleep(0.2)
        status_seconds = time.monotonic() - t_status
        k8s.wait_quiet(1.0, 120)
        settled = compile_lines(k8s.log())
        ms = compile_ms(k8s.log())
        if kind.httproute:
            print(gateway_summary(api))
        print(f"status of all {total} {whats} written {ready + status_seconds:.1f} s after start; "
              f"{len(settled)} compiles so far"
              + (f" (median {statistics.median(ms):.1f} ms, max {max(ms):.1f} ms)" if ms else "")
              + f"; VmRSS {load.rss_kib(k8s.pid) / 1024:.1f} MiB")

        results = []
        for k in range(args.trials):
            served, posted, statuses, offset = time_to_serve(api, kind, k8s, k)
            k8s.wait_quiet(0.5, 60)
            during = k8s.log_since(offset)
            results.append((served, posted, compile_ms(during), statuses, during))
            answers = ", ".join(f"{c}x {s or 'error'}" for s, c in sorted(statuses.items(), key=str))
            print(f"  trial {k + 1:>2}: {served * 1000:7.1f} ms (create request {posted * 1000:5.1f} ms; "
                  f"compiles meanwhile and after: {', '.join(f'{x:.1f}' for x in compile_ms(during)) or 'none'} ms; "
                  f"before the 200: {answers or 'none'})")
        times = [r[0] * 1000 for r in results]
        print(f"time to serve over {len(times)} trials: min {min(times):.1f} ms, median {statistics.median(times):.1f} ms, "
              f"p90 {percentile(times, 90):.1f} ms, max {max(times):.1f} ms")
        all_ms = [x for r in results for x in r[2]]
        if all_ms:
            print(f"compile durations logged during the trials ({len(all_ms)}): min {min(all_ms):.1f} ms, "
                  f"median {statistics.median(all_ms):.1f} ms, max {max(all_ms):.1f} ms")
            print("the gateway's compile lines of the last trial:")
            for line in compile_lines(results[-1][4]):
                print(f"  {line}")
        else:
            print("no compile line with a duration in the gateway's log")

        # 2. Memory.
        print(f"\n2. memory (VmRSS after 20 requests and a 2 s settle)")
        a = rss_after_settle(k8s, "bench.test")
        stop(k8s)
        empty = start("kubernetes-empty", kubernetes_yaml(kubeconfig, EMPTY_NS))
        empty.wait_ready(120)
        b = rss_after_settle(empty, "bench.test")
        stop(empty)
        vhosts = vhosts_yaml(kind, [("bench", "bench.test")] + [(f"h{i}", f"h{i}.bench.test") for i in range(n)],
                             up_port)
        files = start("file-vhosts", vhosts)
        files.wait_ready(60)
        if http_status(files.port, "/", f"h{n - 1}.bench.test") != 200:
            fail("the file-only gateway does not serve its last vhost")
        c = rss_after_settle(files, "bench.test")
        stop(files)
        rows = [(f"(a) Kubernetes mode, {n + 1 + args.trials} {whats}"
                 + (" (1 Gateway)" if kind.httproute else "") + f", {n} Services, {n} EndpointSlices", a),
                ("(b) Kubernetes mode, an empty namespace", b),
                (f"(c) gw.yaml only, the same {n + 1} hosts as vhosts", c)]
        width = max(len(label) for label, _ in rows) + 1
        for label, kib in rows:
            print(f"{label + ':':<{width}} {kib / 1024:7.1f} MiB")
        print(f"a - c (watch caches and controller): {(a - c) / 1024:+.1f} MiB ({(a - c) / (n + 1):+.1f} KiB per {what})")
        print(f"a - b (the {n} objects of each kind, all told): {(a - b) / 1024:+.1f} MiB ({(a - b) / (n + 1):+.1f} KiB per {what})")

        # 3. Instructions per request.
        if not args.skip_instructions:
            print(f"\n3. instructions per request (callgrind, wrk -c{args.connections} -d{args.seconds}s, Host bench.test, production policy)")
            rest = vhosts_yaml(kind, [("bench", "bench.test")], up_port)
            x, xr, _, _ = callgrind_measure(workdir, "callgrind-file", rest, args, 120)
            labels = ["(x) gw.yaml vhost:", f"(y) {what}, {n + 1 + args.trials} {whats} present:"]
            width = max(map(len, labels))
            print(f"{labels[0]:<{width}} {x:>9,.0f} instructions/request ({xr} requests)")
            y, yr, y_ready, y_compiles = callgrind_measure(workdir, "callgrind-kubernetes",
                                                      kubernetes_yaml(kubeconfig, NS), args, 600,
                                                      port=listen_port if kind.httproute else None)
            print(f"{labels[1]:<{width}} {y:>9,.0f} instructions/request ({yr} requests; ready under valgrind in {y_ready:.1f} s; "
                  f"{y_compiles} compiles while counting)")
            print(f"y / x: {y / x:.4f} ({(y / x - 1) * 100:+.2f}%)")
        print(f"\ntotal {time.monotonic() - run_started:.0f} s")
    finally:
        for gw in gateways:
            gw.stop()
        if api:
            api.close()
        if nginx:
            nginx.terminate()
            try:
                nginx.wait(10)
            except subprocess.TimeoutExpired:
                nginx.kill()
        stop_control_plane(cpdir)
        if args.keep:
            print(f"work directory kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
