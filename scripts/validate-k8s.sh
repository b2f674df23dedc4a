#!/usr/bin/env bash
# Validates every resource the kustomizations list with `kubernetes-validate --strict`.
# CRD kinds (the Prometheus Operator's ServiceMonitor) have no schema there and are
# only checked for the fields the operator needs.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 - <<'PY'
import subprocess, sys, yaml

core = []
for kustomization in ["k8s/kustomization.yaml", "k8s/monitoring/kustomization.yaml"]:
    base = kustomization.rsplit("/", 1)[0]
    for res in yaml.safe_load(open(kustomization))["resources"]:
        path = f"{base}/{res}"
        for doc in yaml.safe_load_all(open(path)):
            if doc["apiVersion"].startswith("monitoring.coreos.com/"):
                spec = doc["spec"]
                assert spec["selector"]["matchLabels"], path
                assert all(e["port"] and e["path"] == "/metrics" for e in spec["endpoints"]), path
                print(f"{path}: {doc['kind']} (CRD) has a selector and /metrics endpoints")
            elif path not in core:
                core.append(path)
sys.exit(subprocess.run(["kubernetes-validate", "--strict", "--quiet", *core]).returncode
         or print(f"{len(core)} manifest files valid (--strict)"))
PY
