#!/usr/bin/env bash
# Validates every resource the kustomizations list, and every object the Helm chart
# renders (default values and deploy/helm/pingora-secgw/ci/*), with
# `kubernetes-validate --strict`.
# CRD kinds have no schema there (kubernetes-validate only warns, and passes, on a kind it
# does not know), so they never reach it:
#   - the Gateway API's (the GatewayClass of k8s/kubernetes-mode/) are validated against
#     the openAPIV3Schema of their CRD, from the Gateway API release that
#     scripts/control-plane.sh pins and installs in the tests' kube-apiserver (fetched
#     into its cache by `scripts/control-plane.sh gateway-api-crds`: Go and the module
#     proxy on a cold cache), strictly: an unknown field is an error, as with
#     --strict. The CRDs' CEL rules (x-kubernetes-validations) are not evaluated here;
#   - the Prometheus Operator's ServiceMonitor is only checked for the fields the
#     operator needs.
#
# Layout: the file-only mode's manifests are in k8s/base/; k8s/kustomization.yaml
# (`kubectl apply -k k8s/`) is that base alone, and the overlay sits beside the base
# rather than inside it (kustomize refuses an overlay within its base's directory).
#
# The Kubernetes-mode overlay (k8s/kubernetes-mode/): its own resources, and those of
# its patches that are whole objects, go through kubernetes-validate with the rest;
# the patches are also checked with asserts (the Deployment patch is a partial object,
# which no schema accepts). Most of these files are the Helm chart's rendering
# (scripts/render-k8s.sh; tests/helm.rs keeps them equal). Its RBAC is checked to grant exactly what the gateway uses,
# no more and no less. With kubectl on the PATH the overlay is also rendered (`kubectl
# kustomize`, no cluster needed) and the result validated as a whole.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import json, os, re, shutil, subprocess, sys, tempfile, yaml
import jsonschema

TOP = "k8s/kustomization.yaml"
BASE = "k8s/base/kustomization.yaml"
BASE_DIR = os.path.dirname(BASE)
OVERLAY = "k8s/kubernetes-mode/kustomization.yaml"
OVERLAY_DIR = os.path.dirname(OVERLAY)
KUSTOMIZATIONS = [TOP, BASE, "k8s/monitoring/kustomization.yaml", OVERLAY]

def docs(path):
    return [d for d in yaml.safe_load_all(open(path)) if d is not None]

def key(doc):
    m = doc["metadata"]
    return (doc["kind"], m["name"], m.get("namespace"))

# The Gateway API's CRD kinds: {(apiVersion, kind): (scope, the CRD's version entry)}
# for every served version, read once, when the first such object turns up.
GATEWAY_API_GROUP = "gateway.networking.k8s.io"
_gateway_api = {}

def gateway_api_versions():
    if not _gateway_api:
        got = subprocess.run(["scripts/control-plane.sh", "gateway-api-crds"], capture_output=True, text=True)
        if got.returncode:
            sys.exit(f"scripts/control-plane.sh gateway-api-crds (the Gateway API CRDs):\n{got.stderr.strip()}")
        directory = got.stdout.strip()
        for file in sorted(os.listdir(f"{directory}/json")):
            crd = json.load(open(f"{directory}/json/{file}"))
            spec = crd["spec"]
            for version in spec["versions"]:
                if version["served"]:
                    _gateway_api[(f"{spec['group']}/{version['name']}", spec["names"]["kind"])] = (spec["scope"], version)
        _gateway_api["directory"] = directory
    return _gateway_api

def strict(schema):
    """The schema with unknown fields refused: a CRD's structural schema prunes them
    silently (kubectl apply would drop a misspelt field without a word)."""
    schema = dict(schema)
    if "properties" in schema:
        schema["properties"] = {k: strict(v) for k, v in schema["properties"].items()}
        if "additionalProperties" not in schema and not schema.get("x-kubernetes-preserve-unknown-fields"):
            schema["additionalProperties"] = False
    for k in ("items", "additionalProperties", "not"):
        if isinstance(schema.get(k), dict):
            schema[k] = strict(schema[k])
    for k in ("allOf", "anyOf", "oneOf"):
        if k in schema:
            schema[k] = [strict(s) for s in schema[k]]
    return schema

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

def validate_gateway_api(where, doc):
    """A Gateway API object against its CRD's schema (OpenAPI v3, checked as JSON
    Schema draft 4, whose exclusiveMinimum/Maximum it shares), metadata apart: the
    CRD's schema leaves metadata to the API server."""
    versions = gateway_api_versions()
    found = versions.get((doc["apiVersion"], doc["kind"]))
    assert found, f"{where}: {doc['kind']} {doc['apiVersion']} is not served by the Gateway API CRDs in {versions['directory']}"
    scope, version = found
    assert not version.get("deprecated"), f"{where}: {doc['apiVersion']} is deprecated: {version.get('deprecationWarning')}"
    meta = doc["metadata"]
    assert set(meta) <= {"name", "namespace", "labels", "annotations"}, f"{where}: metadata {sorted(meta)}"
    assert DNS_SUBDOMAIN.match(meta["name"]) and len(meta["name"]) <= 253, f"{where}: metadata.name {meta['name']!r}"
    if scope == "Cluster":
        assert "namespace" not in meta, f"{where}: {doc['kind']} is cluster-scoped, but has a namespace"
    for field in ("labels", "annotations"):
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in meta.get(field, {}).items()), \
            f"{where}: metadata.{field} must map strings to strings"
    assert "status" not in doc, f"{where}: a manifest sets no status"
    validator = jsonschema.Draft4Validator(strict(version["schema"]["openAPIV3Schema"]))
    errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        sys.exit("\n".join(f"{where}: {doc['kind']} {meta['name']}: "
                           f"{'.'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}" for e in errors))

def check_service_monitor(where, doc):
    """The Prometheus Operator's ServiceMonitor: no schema here, so the fields the
    operator needs."""
    spec = doc["spec"]
    assert spec["selector"]["matchLabels"], where
    assert all(e["port"] and e["path"] == "/metrics" for e in spec["endpoints"]), where

def validate_objects(where, objects):
    """Rendered objects: the Gateway API's kinds against their CRDs, ServiceMonitors
    by their fields, the rest through `kubernetes-validate --strict`; how many went
    the last way."""
    core_objects = []
    for doc in objects:
        if doc["apiVersion"].startswith(f"{GATEWAY_API_GROUP}/"):
            validate_gateway_api(where, doc)
        elif doc["apiVersion"].startswith("monitoring.coreos.com/"):
            check_service_monitor(where, doc)
        else:
            core_objects.append(doc)
    with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
        yaml.safe_dump_all(core_objects, f)
        f.flush()
        if subprocess.run(["kubernetes-validate", "--strict", "--quiet", f.name]).returncode:
            sys.exit(f"{where}: kubernetes-validate --strict failed")
    return len(core_objects)

core = []
gateway_api_objects = 0
for kustomization in KUSTOMIZATIONS:
    base = os.path.dirname(kustomization)
    for res in yaml.safe_load(open(kustomization))["resources"]:
        path = os.path.normpath(f"{base}/{res}")
        if os.path.isdir(path):
            # Another kustomization (k8s/base/): validated as its own entry.
            assert f"{path}/kustomization.yaml" in KUSTOMIZATIONS, path
            continue
        file_docs = docs(path)
        crd_kinds = [d for d in file_docs if d["apiVersion"].split("/")[0] in ("monitoring.coreos.com", GATEWAY_API_GROUP)]
        # A file of CRD kinds alone: kubernetes-validate takes whole files.
        assert not crd_kinds or len(crd_kinds) == len(file_docs), f"{path}: CRD kinds mixed with others"
        for doc in file_docs:
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                check_service_monitor(path, doc)
                print(f"{path}: {doc['kind']} (CRD) has a selector and /metrics endpoints")
            elif doc["apiVersion"].startswith(f"{GATEWAY_API_GROUP}/"):
                validate_gateway_api(path, doc)
                gateway_api_objects += 1
                print(f"{path}: {doc['kind']} (CRD) valid against its CRD's schema (strict)")
            elif path not in core:
                core.append(path)

# `kubectl apply -k k8s/` is the base as it is: nothing added, nothing changed.
top = yaml.safe_load(open(TOP))
assert top["resources"] == [os.path.relpath(BASE_DIR, os.path.dirname(TOP))], f"{TOP}: only the base"
assert set(top) == {"apiVersion", "kind", "resources"}, f"{TOP}: {sorted(set(top) - {'apiVersion', 'kind', 'resources'})}"
assert os.path.normpath(f"{OVERLAY_DIR}/{yaml.safe_load(open(OVERLAY))['resources'][0]}") == BASE_DIR, \
    f"{OVERLAY}: the first resource is the base, {BASE_DIR}"

# The base: what the overlay patches, and still the file-only mode (no token).
base_objects = {key(d): d for r in yaml.safe_load(open(BASE))["resources"] for d in docs(f"{BASE_DIR}/{r}")}
base_pod = base_objects[("Deployment", "pingora-secgw", "pingora-secgw")]["spec"]["template"]["spec"]
base_sa = base_objects[("ServiceAccount", base_pod["serviceAccountName"], "pingora-secgw")]
assert base_pod["automountServiceAccountToken"] is False, "base: no token in file-only mode"
assert base_sa["automountServiceAccountToken"] is False, "base: no token in file-only mode"
base_gw = yaml.safe_load(base_objects[("ConfigMap", "pingora-secgw-config", "pingora-secgw")]["data"]["gw.yaml"])
assert "kubernetes" not in base_gw, "base: Kubernetes mode stays off"

# The overlay's patches.
overlay = yaml.safe_load(open(OVERLAY))
patches = {}
for p in overlay["patches"]:
    path = f"{OVERLAY_DIR}/{p['path']}"
    (doc,) = docs(path)
    assert key(doc) in base_objects, f"{path}: patches no object of the base: {key(doc)}"
    patches[doc["kind"]] = (path, doc)

path, sa = patches["ServiceAccount"]
assert sa["metadata"]["name"] == base_sa["metadata"]["name"], path
assert sa["automountServiceAccountToken"] is True, path
core.append(path)  # a whole ServiceAccount
print(f"{path}: the token is mounted")

path, deployment = patches["Deployment"]
pod = deployment["spec"]["template"]["spec"]
assert pod["automountServiceAccountToken"] is True, path
(container,) = pod["containers"]
assert container["name"] == base_pod["containers"][0]["name"], f"{path}: not the base's container"
env = {e["name"]: e for e in container["env"]}
for name, field in [("POD_NAME", "metadata.name"), ("POD_IP", "status.podIP")]:
    assert env[name] == {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field}}}, f"{path}: {name}"
print(f"{path}: token mounted, POD_NAME and POD_IP from the downward API (partial object: asserts only)")

path, configmap = patches["ConfigMap"]
base_data = base_objects[("ConfigMap", "pingora-secgw-config", "pingora-secgw")]["data"]
assert set(configmap["data"]) == set(base_data), f"{path}: the base's files"
assert all(configmap["data"][k] == v for k, v in base_data.items() if k != "gw.yaml"), \
    f"{path}: the policy files are the base's"
gw = yaml.safe_load(configmap["data"]["gw.yaml"])
kubernetes = gw.pop("kubernetes")
assert kubernetes == {"enabled": True, "ingress_class": "secgw", "gateway_class": "secgw"}, f"{path}: {kubernetes}"
assert gw == base_gw, f"{path}: gw.yaml is not the base's plus `kubernetes:`"
core.append(path)  # a whole ConfigMap
print(f"{path}: gw.yaml is the base's plus kubernetes: {kubernetes}")

overlay_objects = {key(d): d for r in overlay["resources"] if not os.path.isdir(f"{OVERLAY_DIR}/{r}")
                   for d in docs(f"{OVERLAY_DIR}/{r}")}
ingress_class = overlay_objects[("IngressClass", kubernetes["ingress_class"], None)]
assert ingress_class["spec"]["controller"] == "secgw.io/ingress-controller"
assert "ingressclass.kubernetes.io/is-default-class" not in ingress_class["metadata"].get("annotations", {})
gateway_class = overlay_objects[("GatewayClass", kubernetes["gateway_class"], None)]
assert gateway_class["spec"]["controllerName"] == "secgw.io/gateway-controller"
# v1, the version the gateway-api crate reads (v1beta1 is still served, but on its way out).
assert gateway_class["apiVersion"] == f"{GATEWAY_API_GROUP}/v1", gateway_class["apiVersion"]

# RBAC: exactly what the gateway does with the API (src/controller/), as
# (API group, resource, verb); a permission added or dropped is a change here too.
def granted(rules):
    assert all("*" not in r["verbs"] + r["resources"] + r["apiGroups"] for r in rules), "no wildcards"
    assert not any(r.get("resourceNames") or r.get("nonResourceURLs") for r in rules), "plain resource rules"
    return {(g, res, v) for r in rules for g in r["apiGroups"] for res in r["resources"] for v in r["verbs"]}

def grants(*entries):
    return {(g, res, v) for g, resources, verbs in entries for res in resources for v in verbs}

LIST_WATCH = ["list", "watch"]
CLUSTER_NEEDS = grants(
    ("", ["services", "secrets", "namespaces"], LIST_WATCH),
    ("networking.k8s.io", ["ingressclasses", "ingresses"], LIST_WATCH),
    ("networking.k8s.io", ["ingresses/status"], ["patch"]),
    ("discovery.k8s.io", ["endpointslices"], LIST_WATCH),
    ("events.k8s.io", ["events"], ["create", "patch"]),
    (GATEWAY_API_GROUP, ["gatewayclasses", "gateways", "httproutes", "referencegrants"], LIST_WATCH),
    (GATEWAY_API_GROUP, ["gatewayclasses/status", "gateways/status", "httproutes/status"], ["patch"]),
    ("secgw.io", ["securitypolicies"], LIST_WATCH),
    ("secgw.io", ["securitypolicies/status"], ["patch"]),
)
# The leader election's Lease, in the gateway's own namespace only.
NAMESPACE_NEEDS = grants(("coordination.k8s.io", ["leases"], ["get", "create", "update"]))
subjects = [{"kind": "ServiceAccount", "name": base_sa["metadata"]["name"], "namespace": base_sa["metadata"]["namespace"]}]
for kind, namespace, needs in [("ClusterRole", None, CLUSTER_NEEDS), ("Role", base_sa["metadata"]["namespace"], NAMESPACE_NEEDS)]:
    role = overlay_objects[(kind, "pingora-secgw", namespace)]
    have = granted(role["rules"])
    assert have == needs, f"{OVERLAY_DIR}: {kind} grants more {sorted(have - needs)} or less {sorted(needs - have)} than needed"
    binding = overlay_objects[(f"{kind}Binding", "pingora-secgw", namespace)]
    assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": "pingora-secgw"}
    assert binding["subjects"] == subjects, f"{kind}Binding: {binding['subjects']}"
print(f"{OVERLAY_DIR}: IngressClass secgw (not default), GatewayClass secgw, ClusterRole and Role (Leases, in "
      f"{base_sa['metadata']['namespace']}) granting exactly what the gateway uses, bound to the base's ServiceAccount")

returncode = subprocess.run(["kubernetes-validate", "--strict", "--quiet", *core]).returncode
if returncode:
    sys.exit(returncode)
print(f"{len(core)} manifest files valid (--strict), {gateway_api_objects} Gateway API object(s) valid against the CRDs")

# The Helm chart, rendered with its default values and with each CI value file: every
# object through the same checks (`helm lint --strict` runs in tests/helm.rs).
CHART = "deploy/helm/pingora-secgw"
# The control plane's version: a helm built without a cluster assumes v1.20.
KUBE_VERSION = subprocess.run(["scripts/control-plane.sh", "kube-version"], capture_output=True,
                              text=True, check=True).stdout.strip()
if subprocess.run(["scripts/helm.sh"]).returncode:
    sys.exit("scripts/helm.sh: helm could not be built")
for values in [[], *[["-f", f"{CHART}/ci/{f}"] for f in sorted(os.listdir(f"{CHART}/ci"))]]:
    where = f"helm template {' '.join(values) or '(default values)'}"
    got = subprocess.run(["target/tools/helm", "template", "pingora-secgw", CHART, "--namespace", "pingora-secgw",
                          "--kube-version", KUBE_VERSION, *values], capture_output=True, text=True)
    if got.returncode:
        sys.exit(f"{where}:\n{got.stderr.strip()}")
    count = validate_objects(where, [d for d in yaml.safe_load_all(got.stdout) if d])
    print(f"{where}: {count} objects valid (--strict), Gateway API and ServiceMonitor kinds checked")

kubectl = shutil.which("kubectl")
if not kubectl:
    print("kubectl not found: the rendered overlay is not validated")
    sys.exit(0)
renders = {}
for directory in [os.path.dirname(TOP), BASE_DIR]:
    rendered = subprocess.run([kubectl, "kustomize", directory], capture_output=True, text=True)
    if rendered.returncode:
        sys.exit(f"kubectl kustomize {directory}:\n{rendered.stderr.strip()}")
    renders[directory] = rendered.stdout
assert renders[os.path.dirname(TOP)] == renders[BASE_DIR], f"kubectl kustomize k8s/ is not {BASE_DIR} as it is"
print(f"kubectl kustomize {os.path.dirname(TOP)}: the base, {BASE_DIR}, unchanged")
rendered = subprocess.run([kubectl, "kustomize", OVERLAY_DIR], capture_output=True, text=True)
if rendered.returncode:
    hint = ""
    if "cycle detected" in rendered.stderr:
        hint = ("\nkustomize refuses a base that contains its overlay's directory "
                "(`kubectl apply -k` fails the same way): the overlay must live outside its base")
    sys.exit(f"kubectl kustomize {OVERLAY_DIR}:\n{rendered.stderr.strip()}{hint}")
rendered_docs = [d for d in yaml.safe_load_all(rendered.stdout) if d]
objects = {key(d): d for d in rendered_docs}
pod = objects[("Deployment", "pingora-secgw", "pingora-secgw")]["spec"]["template"]["spec"]
assert pod["automountServiceAccountToken"] is True
assert {e["name"] for e in pod["containers"][0]["env"]} == {"RUST_LOG", "POD_NAME", "POD_IP"}
assert objects[("ServiceAccount", "pingora-secgw", "pingora-secgw")]["automountServiceAccountToken"] is True
data = objects[("ConfigMap", "pingora-secgw-config", "pingora-secgw")]["data"]
assert data["gw.yaml"] == configmap["data"]["gw.yaml"] and set(data) == set(
    base_objects[("ConfigMap", "pingora-secgw-config", "pingora-secgw")]["data"])
assert set(overlay_objects) <= set(objects)
validate_objects(f"kubectl kustomize {OVERLAY_DIR}", rendered_docs)
print(f"kubectl kustomize {OVERLAY_DIR}: {len(objects)} objects valid (--strict), patches applied")
PY
