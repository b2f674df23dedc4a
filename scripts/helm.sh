#!/usr/bin/env bash
# Builds helm from its Go module (helm.sh/helm/v3/cmd/helm) into target/tools/helm, for
# the chart's checks (tests/helm.rs, scripts/render-k8s.sh, scripts/validate-k8s.sh).
# A second run finds it there.
set -euo pipefail
exec "$(dirname "$0")/go-tool.sh" helm helm.sh/helm/v3/cmd/helm v3.21.4
