{{/* Names */}}
{{- define "memtrail.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "memtrail.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* A component's resource name: <fullname>-<component>, at most 63 characters. */}}
{{- define "memtrail.component" -}}
{{- printf "%s-%s" (include "memtrail.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The ServiceAccount of one component (dict "root" . "component" NAME): one per component,
     so only the sensor's is bound to the API reads it needs. */}}
{{- define "memtrail.serviceAccountName" -}}
{{- if .root.Values.serviceAccount.create -}}
{{- include "memtrail.component" (dict "root" .root "component" .component) -}}
{{- else -}}
{{- default "default" .root.Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Components that run pods, with whether they are enabled. */}}
{{- define "memtrail.podComponents" -}}
{{- $v := .Values -}}
{{- toJson (dict "sensor" $v.sensor.enabled "worker" true "sink-opensearch" $v.sinks.opensearch.enabled "sink-wazuh" $v.sinks.wazuh.enabled "shim" $v.shim.enabled "audit-webhook" $v.auditWebhook.enabled "topics" $v.kafka.topics.create) -}}
{{- end -}}

{{- define "memtrail.secretName" -}}
{{- include "memtrail.fullname" . -}}
{{- end -}}

{{/* Labels */}}
{{- define "memtrail.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: memtrail
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "memtrail.selectorLabels" . }}
{{- end -}}

{{- define "memtrail.selectorLabels" -}}
app.kubernetes.io/name: {{ include "memtrail.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Images: digest wins over tag; tag defaults to appVersion. */}}
{{- define "memtrail.image" -}}
{{- $img := index .root.Values.image .which -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (default .root.Chart.AppVersion $img.tag) -}}
{{- end -}}
{{- end -}}

{{/* Pod annotations for annotation-based Prometheus scraping. */}}
{{- define "memtrail.scrapeAnnotations" -}}
{{- if .root.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/* Environment shared by every component: broker, topics, patterns, log level. */}}
{{- define "memtrail.commonEnv" -}}
- name: MEMTRAIL_KAFKA__BOOTSTRAP
  value: {{ .Values.kafka.bootstrap | quote }}
- name: MEMTRAIL_KAFKA__PARTITIONS
  value: {{ .Values.kafka.partitions | quote }}
- name: MEMTRAIL_KAFKA__REPLICATION_FACTOR
  value: {{ .Values.kafka.replicationFactor | quote }}
{{- if or .Values.kafka.existingSecret .Values.kafka.config .Values.kafka.secretConfig }}
- name: MEMTRAIL_KAFKA__EXTRA
  valueFrom:
    secretKeyRef:
      name: {{ default (include "memtrail.secretName" .) .Values.kafka.existingSecret }}
      key: MEMTRAIL_KAFKA__EXTRA
{{- end }}
{{- include "memtrail.kafkaSecurityEnv" . }}
- name: MEMTRAIL_PATTERNS_DIRS
  value: {{ include "memtrail.patternsDirs" . | quote }}
- name: MEMTRAIL_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- end -}}

{{/* JSON list of pattern directories: the built-in library, then the mounted ones. */}}
{{- define "memtrail.patternsDirs" -}}
{{- $dirs := list -}}
{{- if .Values.patterns.builtin -}}{{- $dirs = append $dirs "/opt/memtrail/patterns/library" -}}{{- end -}}
{{- if .Values.patterns.custom -}}{{- $dirs = append $dirs "/etc/memtrail/patterns/custom" -}}{{- end -}}
{{- if .Values.patterns.existingConfigMap -}}{{- $dirs = append $dirs "/etc/memtrail/patterns/extra" -}}{{- end -}}
{{- toJson $dirs -}}
{{- end -}}

{{- define "memtrail.patternVolumeMounts" -}}
{{- if .Values.patterns.custom }}
- name: patterns-custom
  mountPath: /etc/memtrail/patterns/custom
  readOnly: true
{{- end }}
{{- if .Values.patterns.existingConfigMap }}
- name: patterns-extra
  mountPath: /etc/memtrail/patterns/extra
  readOnly: true
{{- end }}
{{- end -}}

{{- define "memtrail.patternVolumes" -}}
{{- if .Values.patterns.custom }}
- name: patterns-custom
  configMap:
    name: {{ include "memtrail.component" (dict "root" . "component" "patterns") }}
{{- end }}
{{- if .Values.patterns.existingConfigMap }}
- name: patterns-extra
  configMap:
    name: {{ .Values.patterns.existingConfigMap }}
{{- end }}
{{- end -}}

{{/* Cross-value checks a JSON schema cannot express: fail at install with a clear message. */}}
{{- define "memtrail.validate" -}}
{{- if and .Values.worker.enabled (gt (int .Values.worker.replicas) (int .Values.kafka.partitions)) -}}
{{- fail (printf "worker.replicas (%d) must not exceed kafka.partitions (%d): extra workers would sit idle with no partition" (int .Values.worker.replicas) (int .Values.kafka.partitions)) -}}
{{- end -}}
{{- if and .Values.sinks.opensearch.enabled (not .Values.sinks.opensearch.url) -}}
{{- fail "sinks.opensearch.enabled needs sinks.opensearch.url" -}}
{{- end -}}
{{- if and .Values.sinks.wazuh.enabled (eq .Values.sinks.wazuh.mode "api") (not .Values.sinks.wazuh.url) -}}
{{- fail "sinks.wazuh.mode=api needs sinks.wazuh.url" -}}
{{- end -}}
{{- if and .Values.sinks.wazuh.enabled (ne .Values.sinks.wazuh.mode "api") (not .Values.sinks.wazuh.hostPath) -}}
{{- fail (printf "sinks.wazuh.mode=%s needs sinks.wazuh.hostPath" .Values.sinks.wazuh.mode) -}}
{{- end -}}
{{- if and .Values.shim.enabled (gt (int .Values.shim.replicas) 1) (not .Values.shim.databaseUrl) (not .Values.shim.existingSecret) -}}
{{- fail "shim.replicas > 1 needs a shared store: set shim.databaseUrl (PostgreSQL)" -}}
{{- end -}}
{{- if and .Values.auditWebhook.enabled (not .Values.auditWebhook.tlsSecret) -}}
{{- fail "auditWebhook.enabled needs auditWebhook.tlsSecret (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- if and .Values.auditWebhook.enabled (not (or .Values.auditWebhook.clientCASecret .Values.auditWebhook.tokenSecret)) -}}
{{- fail "auditWebhook.enabled needs authentication: auditWebhook.clientCASecret (mutual TLS) or auditWebhook.tokenSecret (bearer token)" -}}
{{- end -}}
{{- if not (or .Values.patterns.builtin .Values.patterns.custom .Values.patterns.existingConfigMap) -}}
{{- fail "no patterns: enable patterns.builtin or give patterns.custom / patterns.existingConfigMap" -}}
{{- end -}}
{{- end -}}

{{/* The CRI socket as the sensor sees it: under /host/run when the node path is under
hostPaths.run, else its own mount at /host/cri/<name>. Empty when auto-detecting. */}}
{{- define "memtrail.sensorCriSocket" -}}
{{- with .Values.sensor.cri.socket -}}
{{- $p := . | replace "/var/run/" "/run/" -}}
{{- $run := printf "%s/" (trimSuffix "/" $.Values.sensor.hostPaths.run) -}}
{{- if hasPrefix $run $p -}}
{{- printf "/host/run/%s" (trimPrefix $run $p) -}}
{{- else -}}
{{- printf "/host/cri/%s" (base $p) -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "true" when the CRI socket is outside hostPaths.run and needs a hostPath mount of its own. */}}
{{- define "memtrail.sensorCriOwnMount" -}}
{{- if and .Values.sensor.cri.enabled (hasPrefix "/host/cri/" (include "memtrail.sensorCriSocket" .)) -}}true{{- end -}}
{{- end -}}

{{/* Sensor environment for the CRI source. */}}
{{- define "memtrail.sensorCriEnv" -}}
{{- if not .Values.sensor.cri.enabled }}
- name: MEMTRAIL_SENSOR_CRI
  value: "false"
{{- else if .Values.sensor.cri.socket }}
- name: MEMTRAIL_SENSOR_CRI_SOCKET
  value: {{ include "memtrail.sensorCriSocket" . | quote }}
{{- else }}
- name: MEMTRAIL_SENSOR_CRI_CANDIDATES
  value: '["/host/run/containerd/containerd.sock", "/host/run/crio/crio.sock", "/host/run/cri-dockerd.sock"]'
{{- end }}
{{- end -}}

{{/* The Docker Engine API socket as the sensor sees it: the node's /run is mounted at /host/run. */}}
{{- define "memtrail.sensorDockerSocket" -}}
{{- with .Values.sensor.dockerSocket -}}
{{- $p := . | replace "/var/run/" "/run/" -}}
{{- $run := printf "%s/" (trimSuffix "/" $.Values.sensor.hostPaths.run) -}}
{{- if not (hasPrefix $run $p) -}}
{{- fail (printf "sensor.dockerSocket (%s) must be under sensor.hostPaths.run (%s)" . $.Values.sensor.hostPaths.run) -}}
{{- end -}}
{{- printf "/host/run/%s" (trimPrefix $run $p) -}}
{{- end -}}
{{- end -}}

{{/* Pod-level settings shared by the non-sensor Deployments. */}}
{{- define "memtrail.podCommon" -}}
serviceAccountName: {{ include "memtrail.serviceAccountName" . }}
# No Kubernetes API access: no token in the pod.
automountServiceAccountToken: false
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- with .root.Values.image.pullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* An env entry from a Secret key: the chart's Secret, or the user's existingSecret. */}}
{{- define "memtrail.secretEnv" -}}
- name: {{ .key }}
  valueFrom:
    secretKeyRef:
      name: {{ default (include "memtrail.secretName" .root) .existing }}
      key: {{ .key }}
      {{- if .optional }}
      optional: true
      {{- end }}
{{- end -}}

{{/* Liveness and readiness on a metrics server port (memtrail.core.metrics.serve_metrics). */}}
{{- define "memtrail.probes" -}}
livenessProbe:
  httpGet:
    path: /healthz
    port: {{ .port }}
  initialDelaySeconds: 20
  periodSeconds: 15
  failureThreshold: 4
readinessProbe:
  httpGet:
    path: {{ default "/readyz" .readyPath }}
    port: {{ .port }}
  initialDelaySeconds: 5
  periodSeconds: 10
  failureThreshold: 3
{{- end -}}

{{/* Kafka TLS/SASL settings (KafkaSettings.security), the same for every component. */}}
{{- define "memtrail.kafkaSecurityEnv" -}}
{{- $sec := .Values.kafka.security }}
- name: MEMTRAIL_KAFKA__SECURITY__PROTOCOL
  value: {{ $sec.protocol | quote }}
{{- if has $sec.protocol (list "SSL" "SASL_SSL") }}
{{- if and $sec.tls.secret $sec.tls.caKey }}
- name: MEMTRAIL_KAFKA__SECURITY__CA_FILE
  value: {{ printf "/etc/memtrail/kafka-tls/%s" $sec.tls.caKey | quote }}
{{- end }}
{{- if and $sec.tls.secret $sec.tls.certKey $sec.tls.keyKey }}
- name: MEMTRAIL_KAFKA__SECURITY__CERT_FILE
  value: {{ printf "/etc/memtrail/kafka-tls/%s" $sec.tls.certKey | quote }}
- name: MEMTRAIL_KAFKA__SECURITY__KEY_FILE
  value: {{ printf "/etc/memtrail/kafka-tls/%s" $sec.tls.keyKey | quote }}
{{- end }}
- name: MEMTRAIL_KAFKA__SECURITY__VERIFY_HOSTNAME
  value: {{ $sec.tls.verifyHostname | quote }}
{{- end }}
{{- if has $sec.protocol (list "SASL_PLAINTEXT" "SASL_SSL") }}
{{- if not $sec.sasl.existingSecret }}
{{- fail "kafka.security.sasl.existingSecret is required for a SASL protocol" }}
{{- end }}
- name: MEMTRAIL_KAFKA__SECURITY__SASL_MECHANISM
  value: {{ $sec.sasl.mechanism | quote }}
- name: MEMTRAIL_KAFKA__SECURITY__SASL_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $sec.sasl.existingSecret }}
      key: {{ $sec.sasl.usernameKey }}
- name: MEMTRAIL_KAFKA__SECURITY__SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $sec.sasl.existingSecret }}
      key: {{ $sec.sasl.passwordKey }}
{{- end }}
{{- end -}}

{{- define "memtrail.kafkaVolumeMounts" -}}
{{- if and .Values.kafka.security.tls.secret (has .Values.kafka.security.protocol (list "SSL" "SASL_SSL")) }}
- name: kafka-tls
  mountPath: /etc/memtrail/kafka-tls
  readOnly: true
{{- end }}
{{- end -}}

{{- define "memtrail.kafkaVolumes" -}}
{{- if and .Values.kafka.security.tls.secret (has .Values.kafka.security.protocol (list "SSL" "SASL_SSL")) }}
- name: kafka-tls
  secret:
    secretName: {{ .Values.kafka.security.tls.secret }}
{{- end }}
{{- end -}}
