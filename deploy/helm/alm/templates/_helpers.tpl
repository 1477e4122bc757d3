{{/* Names, labels and the image. */}}

{{- define "alm.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "alm.fullname" -}}
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

{{/* Selector labels of one component: (dict "root" $ "component" "fetcher" "source" "crossref") */}}
{{- define "alm.selectorLabels" -}}
app.kubernetes.io/name: {{ include "alm.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .source }}
alm.source: {{ .source }}
{{- end }}
{{- end -}}

{{- define "alm.labels" -}}
{{ include "alm.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: alm
{{- end -}}

{{/* Labels of a resource that belongs to no one component. */}}
{{- define "alm.commonLabels" -}}
app.kubernetes.io/name: {{ include "alm.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: alm
{{- end -}}

{{- define "alm.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{- define "alm.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "alm.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Comma-separated Cassandra contact points from a string or a list. */}}
{{- define "alm.cassandraHosts" -}}
{{- if kindIs "slice" .Values.cassandra.hosts -}}
{{- join "," .Values.cassandra.hosts -}}
{{- else -}}
{{- .Values.cassandra.hosts -}}
{{- end -}}
{{- end -}}

{{/* Names of the enabled sources, sorted, as a JSON list (fromJsonArray to use it). */}}
{{- define "alm.enabledSources" -}}
{{- $names := list -}}
{{- range $name, $source := .Values.sources -}}
{{- if $source.enabled -}}{{- $names = append $names $name -}}{{- end -}}
{{- end -}}
{{- sortAlpha $names | toJson -}}
{{- end -}}

{{/* `over`'s keys replace `base`'s, false and 0 included (sprig's merge would keep base's). */}}
{{- define "alm.overlay" -}}
{{- $out := deepCopy (.base | default dict) -}}
{{- range $key, $value := (.over | default dict) -}}
{{- $_ := set $out $key $value -}}
{{- end -}}
{{- toYaml $out -}}
{{- end -}}

{{/* A source's fetcher settings: `fetcher` overlaid with the source's own (autoscaling key by key). */}}
{{- define "alm.sourceConfig" -}}
{{- $source := .root.Values.sources | dig .name dict -}}
{{- $config := include "alm.overlay" (dict "base" (omit .root.Values.fetcher "extraEnv") "over" (omit $source "extraEnv")) | fromYaml -}}
{{- $autoscaling := include "alm.overlay" (dict "base" .root.Values.fetcher.autoscaling "over" (dig "autoscaling" dict $source)) | fromYaml -}}
{{- $_ := set $config "autoscaling" $autoscaling -}}
{{- $_ := set $config "extraEnv" (concat (.root.Values.fetcher.extraEnv | default list) (dig "extraEnv" list $source)) -}}
{{- toYaml $config -}}
{{- end -}}

{{/* Whether the chart keeps a Cassandra password Secret of its own. */}}
{{- define "alm.cassandraSecret" -}}
{{- if and .Values.cassandra.auth.password (not .Values.cassandra.auth.existingSecret) -}}
{{- printf "%s-cassandra" (include "alm.fullname" .) -}}
{{- end -}}
{{- end -}}

{{/* Environment every container gets: (dict "root" $ "cassandra" true). ALM_SOURCES is shared
by every service: the scheduler sends requests for them, and the API (and the setup Jobs) schedule
the works they register from exactly those sources; a fetcher's --source narrows it to its own. */}}
{{- define "alm.env" -}}
{{- $v := .root.Values -}}
- name: ALM_BUS
  value: kafka
- name: ALM_STORE
  value: cassandra
- name: ALM_KAFKA_BOOTSTRAP
  value: {{ $v.kafka.bootstrap | quote }}
{{- if $v.kafka.topicPrefix }}
- name: ALM_TOPIC_PREFIX
  value: {{ $v.kafka.topicPrefix | quote }}
{{- end }}
- name: ALM_SOURCES
  value: {{ join "," (include "alm.enabledSources" .root | fromJsonArray) | quote }}
- name: ALM_CASSANDRA_HOSTS
  value: {{ include "alm.cassandraHosts" .root | quote }}
- name: ALM_CASSANDRA_PORT
  value: {{ $v.cassandra.port | quote }}
- name: ALM_CASSANDRA_KEYSPACE
  value: {{ $v.cassandra.keyspace | quote }}
- name: ALM_RAW_TTL_DAYS
  value: {{ $v.cassandra.rawTtlDays | quote }}
{{- if $v.contactEmail }}
- name: ALM_CONTACT_EMAIL
  value: {{ $v.contactEmail | quote }}
{{- end }}
- name: ALM_HOST
  value: 0.0.0.0
- name: ALM_METRICS_PORT
  value: {{ $v.metrics.port | quote }}
- name: ALM_DATA_DIR
  value: /var/lib/alm
- name: ALM_STATUS_CACHE_SECONDS
  value: {{ $v.config.statusCacheSeconds | quote }}
- name: ALM_SCHEDULER_BACKPRESSURE
  value: {{ ternary "true" "false" $v.config.backpressure | quote }}
- name: ALM_LOG_LEVEL
  value: {{ $v.logging.level | quote }}
- name: ALM_LOG_JSON
  value: {{ ternary "1" "0" $v.logging.json | quote }}
{{- if $v.config.defaultRefresh }}
- name: ALM_DEFAULT_REFRESH
  value: {{ $v.config.defaultRefresh | quote }}
{{- end }}
{{- range $name, $source := $v.sources }}
{{- if and $source.enabled $source.refresh }}
- name: ALM_{{ upper $name }}_REFRESH
  value: {{ $source.refresh | quote }}
{{- end }}
{{- end }}
{{- if $v.config.gcThreshold }}
- name: ALM_GC_THRESHOLD
  value: {{ $v.config.gcThreshold | quote }}
{{- end }}
- name: ALM_WEBHOOK_ALLOW_PRIVATE
  value: {{ ternary "true" "false" $v.webhooks.allowPrivate | quote }}
- name: ALM_WEBHOOK_MAX_FAILURES
  value: {{ $v.webhooks.maxFailures | quote }}
- name: ALM_WEBHOOK_TIMEOUT
  value: {{ $v.webhooks.timeoutSeconds | quote }}
{{- if $v.config.upstreamRoot }}
- name: ALM_UPSTREAM_ROOT
  value: {{ $v.config.upstreamRoot | quote }}
{{- end }}
{{- if .cassandra }}
{{- include "alm.cassandraEnv" .root }}
{{- end }}
{{- with $v.config.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "alm.cassandraEnv" -}}
{{- $auth := .Values.cassandra.auth -}}
{{- $tls := .Values.cassandra.tls -}}
{{- if $auth.username }}
- name: ALM_CASSANDRA_USERNAME
  value: {{ $auth.username | quote }}
{{- else if $auth.existingSecret }}
- name: ALM_CASSANDRA_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ $auth.existingSecret }}
      key: {{ $auth.usernameKey }}
{{- end }}
{{- if or $auth.existingSecret $auth.password }}
- name: ALM_CASSANDRA_PASSWORD_FILE
  value: /etc/alm/cassandra/auth/password
{{- end }}
{{- if $tls.enabled }}
- name: ALM_CASSANDRA_TLS
  value: "true"
{{- if and $tls.existingSecret $tls.caKey }}
- name: ALM_CASSANDRA_TLS_CA
  value: /etc/alm/cassandra/tls/ca.crt
{{- end }}
{{- if and $tls.existingSecret $tls.certKey }}
- name: ALM_CASSANDRA_TLS_CERT
  value: /etc/alm/cassandra/tls/tls.crt
- name: ALM_CASSANDRA_TLS_KEY
  value: /etc/alm/cassandra/tls/tls.key
{{- end }}
{{- if not $tls.verifyHostname }}
- name: ALM_CASSANDRA_TLS_NO_VERIFY_HOSTNAME
  value: "true"
{{- end }}
{{- end }}
{{- end -}}

{{/* Volumes with the Cassandra password and TLS files: (dict "root" $ "hook" false) */}}
{{- define "alm.cassandraVolumes" -}}
{{- $auth := .root.Values.cassandra.auth -}}
{{- $tls := .root.Values.cassandra.tls -}}
{{- if or $auth.existingSecret $auth.password }}
- name: cassandra-auth
  secret:
    secretName: {{ $auth.existingSecret | default (printf "%s%s" (include "alm.cassandraSecret" .root) (ternary "-hook" "" (eq .hook true))) }}
    defaultMode: 0440
    items:
      - key: {{ ternary $auth.passwordKey "password" (not (empty $auth.existingSecret)) }}
        path: password
{{- end }}
{{- if and $tls.enabled $tls.existingSecret }}
- name: cassandra-tls
  secret:
    secretName: {{ $tls.existingSecret }}
    defaultMode: 0440
    items:
      {{- if $tls.caKey }}
      - key: {{ $tls.caKey }}
        path: ca.crt
      {{- end }}
      {{- if $tls.certKey }}
      - key: {{ $tls.certKey }}
        path: tls.crt
      - key: {{ $tls.keyKey }}
        path: tls.key
      {{- end }}
{{- end }}
{{- end -}}

{{- define "alm.cassandraMounts" -}}
{{- if or .Values.cassandra.auth.existingSecret .Values.cassandra.auth.password }}
- name: cassandra-auth
  mountPath: /etc/alm/cassandra/auth
  readOnly: true
{{- end }}
{{- if and .Values.cassandra.tls.enabled .Values.cassandra.tls.existingSecret }}
- name: cassandra-tls
  mountPath: /etc/alm/cassandra/tls
  readOnly: true
{{- end }}
{{- end -}}

{{/* prometheus.io annotations of a pod serving /metrics on `port`. */}}
{{- define "alm.scrapeAnnotations" -}}
{{- if .root.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end -}}

{{/*
The pod template every workload shares. Arguments (a dict):
  root, component, source (optional), container (name), args (list), env (YAML list string),
  ports (YAML list string), probes (YAML string), resources, annotations (YAML map string),
  cassandra (bool: mounts and env), data (bool: a writable ALM_DATA_DIR), hook (bool: a Job
  run as a hook), restartPolicy, terminationGracePeriodSeconds, lifecycle (YAML string),
  volumes and mounts (YAML list strings: more volumes and their mounts).
*/}}
{{- define "alm.podTemplate" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
metadata:
  labels:
    {{- include "alm.selectorLabels" . | nindent 4 }}
    app.kubernetes.io/part-of: alm
    {{- with $v.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- $annotations := include "alm.podAnnotations" . | trim }}
  {{- if $annotations }}
  annotations:
    {{- $annotations | nindent 4 }}
  {{- end }}
spec:
  {{- if .hook }}
  serviceAccountName: {{ $v.jobs.serviceAccountName | default "default" }}
  {{- else }}
  serviceAccountName: {{ include "alm.serviceAccountName" $root }}
  {{- end }}
  automountServiceAccountToken: false
  {{- with $v.image.pullSecrets }}
  imagePullSecrets:
    {{- range . }}
    - name: {{ . }}
    {{- end }}
  {{- end }}
  {{- with .restartPolicy }}
  restartPolicy: {{ . }}
  {{- end }}
  {{- with .terminationGracePeriodSeconds }}
  terminationGracePeriodSeconds: {{ . }}
  {{- end }}
  {{- with $v.priorityClassName }}
  priorityClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  {{- with $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $v.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: {{ .container }}
      image: {{ include "alm.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args:
        {{- toYaml .args | nindent 8 }}
      env:
        {{- include "alm.env" (dict "root" $root "cassandra" .cassandra) | nindent 8 }}
        {{- with .env }}
        {{- . | nindent 8 }}
        {{- end }}
      {{- with .ports }}
      ports:
        {{- . | nindent 8 }}
      {{- end }}
      {{- with .probes }}
      {{- . | nindent 6 }}
      {{- end }}
      {{- with .lifecycle }}
      lifecycle:
        {{- . | nindent 8 }}
      {{- end }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      securityContext:
        {{- toYaml $v.securityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if .data }}
        - name: data
          mountPath: /var/lib/alm
        {{- end }}
        {{- if .cassandra }}
        {{- with include "alm.cassandraMounts" $root | trim }}
        {{- . | nindent 8 }}
        {{- end }}
        {{- end }}
        {{- with .mounts }}
        {{- . | nindent 8 }}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ $v.tmpVolume.sizeLimit }}
    {{- if .data }}
    - name: data
      emptyDir:
        sizeLimit: {{ $v.tmpVolume.sizeLimit }}
    {{- end }}
    {{- if .cassandra }}
    {{- with include "alm.cassandraVolumes" (dict "root" $root "hook" .hook) | trim }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- end }}
    {{- with .volumes }}
    {{- . | nindent 4 }}
    {{- end }}
{{- end -}}

{{- define "alm.podAnnotations" -}}
{{- with .root.Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- with .annotations }}
{{ . }}
{{- end }}
{{- if and .cassandra (include "alm.cassandraSecret" .root) }}
checksum/cassandra-secret: {{ .root.Values.cassandra.auth.password | sha256sum | trunc 16 }}
{{- end }}
{{- end -}}

{{/* Liveness and readiness of a worker service: its metrics server answers. */}}
{{- define "alm.workerProbes" -}}
livenessProbe:
  httpGet:
    path: /metrics
    port: metrics
  initialDelaySeconds: 10
  periodSeconds: 30
  timeoutSeconds: 5
  failureThreshold: 3
readinessProbe:
  httpGet:
    path: /metrics
    port: metrics
  periodSeconds: 10
  timeoutSeconds: 5
  failureThreshold: 3
{{- end -}}

{{- define "alm.workerPorts" -}}
- name: metrics
  containerPort: {{ .Values.metrics.port }}
  protocol: TCP
{{- end -}}
