{{/* Names and labels shared by every object of the chart. */}}

{{/* The objects' name: the release's, or release-chart when the release name does not hold the chart's. */}}
{{- define "pingora-secgw.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* What the Deployment, Services, PodDisruptionBudget and NetworkPolicy select pods by. */}}
{{- define "pingora-secgw.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Every object's labels. No helm.sh/chart or managed-by: the plain manifests under
k8s/ are this chart's rendering, applied with kubectl. */}}
{{- define "pingora-secgw.labels" -}}
{{ include "pingora-secgw.selectorLabels" . }}
app.kubernetes.io/part-of: pingora-secgw
{{- end -}}

{{/* The pod's terminationGracePeriodSeconds: the gateway's whole SIGTERM sequence
(drain, grace, graceful shutdown) plus the slack, from the same values that gw.yaml gets. */}}
{{- define "pingora-secgw.terminationGracePeriodSeconds" -}}
{{- $l := .Values.lifecycle -}}
{{- add $l.shutdownDrainSeconds $l.gracePeriodSeconds $l.gracefulShutdownTimeoutSeconds $l.terminationSlackSeconds -}}
{{- end -}}

{{/* gw.yaml: the chart's keys, then config.gwYaml, then the Kubernetes mode's block. */}}
{{- define "pingora-secgw.gwYaml" -}}
{{- $user := fromYaml .Values.config.gwYaml -}}
{{- if hasKey $user "Error" -}}
{{- fail (printf "config.gwYaml is not YAML: %s" (get $user "Error")) -}}
{{- end -}}
{{- range list "version" "threads" "pid_file" "upgrade_sock" "shutdown_drain_seconds" "grace_period_seconds" "graceful_shutdown_timeout_seconds" "kubernetes" -}}
{{- if hasKey $user . -}}
{{- fail (printf "config.gwYaml sets %s, which the chart writes itself: set it through the chart's values (threads, lifecycle, kubernetes)" .) -}}
{{- end -}}
{{- end -}}
{{- $admin := get $user "admin" | default dict -}}
{{- if not (kindIs "map" $admin) -}}
{{- fail "config.gwYaml: admin must be a map with an address" -}}
{{- end -}}
{{- if not (hasSuffix (printf ":%v" .Values.ports.admin) (toString (get $admin "address"))) -}}
{{- fail (printf "config.gwYaml: admin.address must listen on port %v (ports.admin): the probes and the admin Service use it" .Values.ports.admin) -}}
{{- end -}}
{{- $l := .Values.lifecycle -}}
version: 1
threads: {{ int .Values.threads }}
# Writable paths live on the /tmp emptyDir (the root filesystem is read-only).
pid_file: /tmp/pingora-secgw.pid
upgrade_sock: /tmp/pingora-secgw-upgrade.sock
# SIGTERM (docs/operations/lifecycle.md): /readyz turns 503 and the listeners keep serving,
# with connections drained, for {{ $l.shutdownDrainSeconds }} s while the endpoint removal propagates; then
# they close, requests in flight get {{ $l.gracePeriodSeconds }} s, and blocking work at most {{ $l.gracefulShutdownTimeoutSeconds }} s more:
# {{ add $l.shutdownDrainSeconds $l.gracePeriodSeconds $l.gracefulShutdownTimeoutSeconds }} s at most, inside the pod's terminationGracePeriodSeconds ({{ include "pingora-secgw.terminationGracePeriodSeconds" . }}).
shutdown_drain_seconds: {{ int $l.shutdownDrainSeconds }}
grace_period_seconds: {{ int $l.gracePeriodSeconds }}
graceful_shutdown_timeout_seconds: {{ int $l.gracefulShutdownTimeoutSeconds }}

{{ .Values.config.gwYaml }}
{{- if .Values.kubernetes.enabled }}
# Kubernetes mode (docs/kubernetes.md): also serve the Ingresses of the IngressClass
# {{ .Values.kubernetes.ingressClass }} and the Gateways of the GatewayClass {{ .Values.kubernetes.gatewayClass }} with their
# HTTPRoutes, in every namespace, through the in-cluster service account. gw.yaml's
# vhosts win over any Ingress for the same host. One replica at a time writes the
# status (the Lease). Without status_address each replica writes its own pod IP
# ($POD_IP) into the status of what it serves.
kubernetes:
  enabled: true
  ingress_class: {{ .Values.kubernetes.ingressClass }}
  gateway_class: {{ .Values.kubernetes.gatewayClass }}
{{- with .Values.kubernetes.statusAddress }}
  status_address: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* A file's text as the body of a `|` block of a ConfigMap's data: each line on a
new line, four spaces in, blank lines left blank (nindent would pad them). */}}
{{- define "pingora-secgw.dataBlock" -}}
{{- range splitList "\n" (trimSuffix "\n" .) }}
{{ if . }}    {{ . }}{{ end }}
{{- end -}}
{{- end -}}
