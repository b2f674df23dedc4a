#!/usr/bin/env bash
# Validates every resource the kustomizations list with `kubernetes-validate --strict`.
# CRD kinds (the Prometheus Operator's ServiceMonitor) have no schema there and are
# only checked for the fields the operator needs.
#
# Layout: the file-only mode's manifests are in k8s/base/; k8s/kustomization.yaml
# (`kubectl apply -k k8s/`) is that base alone, and the overlay sits beside the base
# rather than inside it (kustomize refuses an overlay within its base's directory).
#
# The Kubernetes-mode overlay (k8s/kubernetes-mode/): its own resources, and those of
# its patches that are whole objects, go through kubernetes-validate with the rest;
# the patches are also checked with asserts (the Deployment patch is a partial object,
# which no schema accepts). With kubectl on the PATH the overlay is also rendered
# (`kubectl kustomize`, no cluster needed) and the result validated as a whole.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import os, shutil, subprocess, sys, tempfile, yaml

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

core = []
for kustomization in KUSTOMIZATIONS:
    base = os.path.dirname(kustomization)
    for res in yaml.safe_load(open(kustomization))["resources"]:
        path = os.path.normpath(f"{base}/{res}")
        if os.path.isdir(path):
            # Another kustomization (k8s/base/): validated as its own entry.
            assert f"{path}/kustomization.yaml" in KUSTOMIZATIONS, path
            continue
        for doc in docs(path):
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                spec = doc["spec"]
                assert spec["selector"]["matchLabels"], path
                assert all(e["port"] and e["path"] == "/metrics" for e in spec["endpoints"]), path
                print(f"{path}: {doc['kind']} (CRD) has a selector and /metrics endpoints")
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
assert set(configmap["data"]) == {"gw.yaml"}, f"{path}: only gw.yaml (the base's policy files are kept)"
gw = yaml.safe_load(configmap["data"]["gw.yaml"])
kubernetes = gw.pop("kubernetes")
assert kubernetes == {"enabled": True, "ingress_class": "secgw"}, f"{path}: {kubernetes}"
assert gw == base_gw, f"{path}: gw.yaml is not the base's plus `kubernetes:`"
core.append(path)  # a whole ConfigMap
print(f"{path}: gw.yaml is the base's plus kubernetes: {kubernetes}")

overlay_objects = {key(d): d for r in overlay["resources"] if not os.path.isdir(f"{OVERLAY_DIR}/{r}")
                   for d in docs(f"{OVERLAY_DIR}/{r}")}
ingress_class = overlay_objects[("IngressClass", "secgw", None)]
assert ingress_class["spec"]["controller"] == "secgw.io/ingress-controller"
assert "ingressclass.kubernetes.io/is-default-class" not in ingress_class["metadata"].get("annotations", {})
role = overlay_objects[("ClusterRole", "pingora-secgw", None)]
assert all("*" not in r["verbs"] + r["resources"] + r["apiGroups"] for r in role["rules"]), "no wildcards"
binding = overlay_objects[("ClusterRoleBinding", "pingora-secgw", None)]
assert binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "pingora-secgw"}
assert binding["subjects"] == [{"kind": "ServiceAccount", "name": base_sa["metadata"]["name"],
                                "namespace": base_sa["metadata"]["namespace"]}]
print(f"{OVERLAY_DIR}: IngressClass secgw (not default), ClusterRole without wildcards, bound to the base's ServiceAccount")

returncode = subprocess.run(["kubernetes-validate", "--strict", "--quiet", *core]).returncode
if returncode:
    sys.exit(returncode)
print(f"{len(core)} manifest files valid (--strict)")

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
objects = {key(d): d for d in yaml.safe_load_all(rendered.stdout) if d}
pod = objects[("Deployment", "pingora-secgw", "pingora-secgw")]["spec"]["template"]["spec"]
assert pod["automountServiceAccountToken"] is True
assert {e["name"] for e in pod["containers"][0]["env"]} == {"RUST_LOG", "POD_NAME", "POD_IP"}
assert objects[("ServiceAccount", "pingora-secgw", "pingora-secgw")]["automountServiceAccountToken"] is True
data = objects[("ConfigMap", "pingora-secgw-config", "pingora-secgw")]["data"]
assert data["gw.yaml"] == configmap["data"]["gw.yaml"] and set(data) == set(
    base_objects[("ConfigMap", "pingora-secgw-config", "pingora-secgw")]["data"])
assert set(overlay_objects) <= set(objects)
with tempfile.NamedTemporaryFile("w", suffix=".yaml") as f:
    f.write(rendered.stdout)
    f.flush()
    returncode = subprocess.run(["kubernetes-validate", "--strict", "--quiet", f.name]).returncode
if returncode:
    sys.exit(returncode)
print(f"kubectl kustomize {OVERLAY_DIR}: {len(objects)} objects valid (--strict), patches applied")
PY
