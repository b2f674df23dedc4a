{{/* Names and labels shared by every object of the chart. */}}

{{/* The objects' name: the release's, or release-chart when the release name does not
hold the chart's; a DNS label (a Service name cannot hold a dot) of at most 56
characters, so that the -config and -admin suffixes stay within 63. */}}
{{- define "pingora-secgw.fullname" -}}
{{- $name := .Release.Name -}}
{{- if not (contains .Chart.Name .Release.Name) -}}
{{- $name = printf "%s-%s" .Release.Name .Chart.Name -}}
{{- end -}}
{{- $name | replace "." "-" | trunc 56 | trimSuffix "-" -}}
{{- end -}}

{{/* The name of the cluster-scoped ClusterRole and its binding: the release's objects'
name, with the namespace added when it differs, so that two releases of one name in
two namespaces do not share them. */}}
{{- define "pingora-secgw.clusterName" -}}
{{- $name := include "pingora-secgw.fullname" . -}}
{{- if ne $name .Release.Namespace -}}
{{- $name = printf "%s-%s" $name .Release.Namespace -}}
{{- end -}}
{{- $name | trunc 63 | trimSuffix "-" -}}
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

{{/* The keys of gw.yaml the chart writes before config.gwYaml. */}}
{{- define "pingora-secgw.chartKeys" -}}
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
{{- end -}}

{{/* The keys of gw.yaml the chart writes after config.gwYaml, in Kubernetes mode. */}}
{{- define "pingora-secgw.kubernetesKeys" -}}
{{- if .Values.kubernetes.enabled -}}
# Kubernetes mode (docs/kubernetes.md): also serve the Ingresses of the IngressClass
# {{ .Values.kubernetes.ingressClass }} and the Gateways of the GatewayClass {{ .Values.kubernetes.gatewayClass }} with their
# HTTPRoutes, in every namespace, through the in-cluster service account. gw.yaml's
# vhosts win over any Ingress for the same host. One replica at a time writes the
# status (the Lease). Without status_address each replica writes its own pod IP
# ($POD_IP) into the status of what it serves.
kubernetes:
  enabled: true
  ingress_class: {{ .Values.kubernetes.ingressClass | quote }}
  gateway_class: {{ .Values.kubernetes.gatewayClass | quote }}
{{- with .Values.kubernetes.statusAddress }}
  status_address: {{ . | quote }}
{{- end }}
{{- end -}}
{{- end -}}

{{/* gw.yaml: the chart's keys, then config.gwYaml, then the Kubernetes mode's block;
refused unless it reads back as exactly those keys (so a gwYaml that is indented, a
flow map, or several documents cannot change its meaning by being pasted in), and
unless its listeners and admin address are the container's ports on every address. */}}
{{- define "pingora-secgw.gwYaml" -}}
{{- $text := .Values.config.gwYaml -}}
{{- if regexMatch "[\r\\x{85}\\x{2028}\\x{2029}]" $text -}}
{{- fail "config.gwYaml holds a line break other than \\n (CR, NEL, U+2028 or U+2029): YAML readers disagree on those" -}}
{{- end -}}
{{- if regexMatch "(?m)^(---|\\.\\.\\.)([ \t#]|$)" $text -}}
{{- fail "config.gwYaml holds a YAML document marker (--- or ...): it must be one document, gw.yaml's keys" -}}
{{- end -}}
{{- $user := fromYaml $text -}}
{{- if hasKey $user "Error" -}}
{{- fail (printf "config.gwYaml is not YAML: %s" (get $user "Error")) -}}
{{- end -}}
{{- range list "version" "threads" "pid_file" "upgrade_sock" "shutdown_drain_seconds" "grace_period_seconds" "graceful_shutdown_timeout_seconds" "kubernetes" -}}
{{- if hasKey $user . -}}
{{- fail (printf "config.gwYaml sets %s, which the chart writes itself: set it through the chart's values (threads, lifecycle, kubernetes)" .) -}}
{{- end -}}
{{- end -}}
{{- $p := .Values.ports -}}
{{- $admin := get $user "admin" | default dict -}}
{{- if not (kindIs "map" $admin) -}}
{{- fail "config.gwYaml: admin must be a map with an address" -}}
{{- end -}}
{{- if not (regexMatch (printf "^(0\\.0\\.0\\.0|\\[::\\]):%v$" $p.admin) (toString (get $admin "address"))) -}}
{{- fail (printf "config.gwYaml: admin.address must be 0.0.0.0:%v or [::]:%v (ports.admin): the probes reach the pod's IP on that port" $p.admin $p.admin) -}}
{{- end -}}
{{- $listeners := get $user "listeners" | default list -}}
{{- if not (kindIs "slice" $listeners) -}}
{{- fail "config.gwYaml: listeners must be a list" -}}
{{- end -}}
{{- range $i, $listener := $listeners -}}
{{- if not (kindIs "map" $listener) -}}
{{- fail (printf "config.gwYaml: listeners[%d] must be a map with an address" $i) -}}
{{- end -}}
{{- $address := toString (get $listener "address") -}}
{{- if not (regexMatch (printf "^(0\\.0\\.0\\.0|\\[::\\]):(%v|%v)$" $p.http $p.https) $address) -}}
{{- fail (printf "config.gwYaml: listeners[%d].address %q must be 0.0.0.0 or [::] on ports.http (%v) or ports.https (%v): the Service and the NetworkPolicy reach those" $i $address $p.http $p.https) -}}
{{- end -}}
{{- end -}}
{{- $gw := printf "%s\n\n%s" (include "pingora-secgw.chartKeys" .) (trimSuffix "\n" $text) -}}
{{- with include "pingora-secgw.kubernetesKeys" . -}}
{{- $gw = printf "%s\n%s" $gw . -}}
{{- end -}}
{{- $gw = printf "%s\n" $gw -}}
{{- /* Built key by key: sprig's merge drops keys whose value is null. */ -}}
{{- $expected := fromYaml (include "pingora-secgw.chartKeys" .) -}}
{{- range $k, $v := fromYaml (include "pingora-secgw.kubernetesKeys" .) -}}
{{- $_ := set $expected $k $v -}}
{{- end -}}
{{- range $k, $v := $user -}}
{{- $_ := set $expected $k $v -}}
{{- end -}}
{{- if not (deepEqual (fromYaml $gw) $expected) -}}
{{- fail "config.gwYaml does not read back as itself once placed after the chart's keys: write it as top-level block keys, not indented and not as a flow map" -}}
{{- end -}}
{{- $gw -}}
{{- end -}}

{{/* A file's text as a value of a ConfigMap's data: a `|` block, each line four
spaces in and blank lines left blank (nindent would pad them), when such a block reads
back as exactly the text: it starts with a visible character, ends with one newline, and
holds no control character nor a line break other than \n (NEL, U+2028 and U+2029 break
lines in YAML, and would let a file write other keys). Otherwise a JSON string, which
YAML reads as it is once the characters YAML refuses raw in a quoted string (DEL, the C1
controls, NEL, U+FFFE and U+FFFF, which JSON leaves raw) are escaped. */}}
{{- define "pingora-secgw.dataValue" -}}
{{- if regexMatch "^[!-~\\x{a0}-\\x{2027}\\x{202a}-\\x{d7ff}\\x{e000}-\\x{fffd}\\x{10000}-\\x{10ffff}][\t\n\x20-\x7e\\x{a0}-\\x{2027}\\x{202a}-\\x{d7ff}\\x{e000}-\\x{fffd}\\x{10000}-\\x{10ffff}]*\n$" . -}}
{{- if hasSuffix "\n\n" . -}}
{{ include "pingora-secgw.jsonValue" . }}
{{- else -}}
|
{{- range splitList "\n" (trimSuffix "\n" .) }}
{{ if . }}    {{ . }}{{ end }}
{{- end -}}
{{- end -}}
{{- else -}}
{{ include "pingora-secgw.jsonValue" . }}
{{- end -}}
{{- end -}}

{{/* A JSON string YAML reads back exactly (see dataValue). */}}
{{- define "pingora-secgw.jsonValue" -}}
{{- $json := toJson . -}}
{{- range $code := concat (untilStep 127 160 1) (list 65534 65535) -}}
{{- $json = replace (printf "%c" $code) (printf "\\u%04x" $code) $json -}}
{{- end -}}
{{- $json -}}
{{- end -}}

{{/* A digest of what gw.yaml takes only at start (docs/operations/reload.md):
everything but the keys that hot-reload, plus HTTP/2's idle timeout
(limits.keepalive_timeout_ms, set at start) and the chart's threads and lifecycle. The
Deployment's pod template carries it, so that a helm upgrade changing one of them rolls
the pods, while any other change reaches them by hot reload, without a restart. */}}
{{- define "pingora-secgw.startOnlyDigest" -}}
{{- $user := fromYaml .Values.config.gwYaml -}}
{{- $keys := omit $user "vhosts" "trusted_proxies" "policy_files" "limits" "access_log" "nonce_cache" -}}
{{- $limits := get $user "limits" | default dict -}}
{{- if kindIs "map" $limits -}}
{{- $_ := set $keys "keepalive_timeout_ms" (get $limits "keepalive_timeout_ms") -}}
{{- end -}}
{{- $_ := set $keys "threads" .Values.threads -}}
{{- $_ := set $keys "lifecycle" .Values.lifecycle -}}
{{- toJson $keys | sha256sum | trunc 16 -}}
{{- end -}}
