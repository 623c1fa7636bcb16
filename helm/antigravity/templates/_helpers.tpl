{{/* Names */}}
{{- define "agp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "agp.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* A component's name: <fullname>-<component> */}}
{{- define "agp.component" -}}
{{- printf "%s-%s" (include "agp.fullname" .root) .name }}
{{- end }}

{{- define "agp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "agp.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/part-of: antigravity
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{- define "agp.selector" -}}
app.kubernetes.io/name: {{ include "agp.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .name }}
{{- end }}

{{/* An image: (dict "root" $ "image" .Values.hub.image "default" "agp-hub") */}}
{{- define "agp.image" -}}
{{- $img := .image | default dict }}
{{- $name := $img.name | default $img.repository | default (printf "%s/%s" .root.Values.images.registry .default) }}
{{- printf "%s:%s" $name ($img.tag | default .root.Values.images.tag) }}
{{- end }}

{{- define "agp.pullPolicy" -}}
{{- $img := .image | default dict }}
{{- $img.pullPolicy | default .root.Values.images.pullPolicy }}
{{- end }}

{{- define "agp.secretName" -}}
{{- .Values.existingSecret | default (printf "%s-credentials" (include "agp.fullname" .)) }}
{{- end }}

{{/* Restricted Pod Security: the pod and container security contexts of every pod of the chart. */}}
{{- define "agp.podSecurity" -}}
runAsNonRoot: true
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "agp.containerSecurity" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: [ALL]
runAsNonRoot: true
{{- end }}

{{/* Endpoints */}}
{{- define "agp.postgresHost" -}}
{{- if .Values.demo.enabled }}{{ include "agp.component" (dict "root" . "name" "postgresql") }}{{ else }}{{ required "postgresql.host is required (or demo.enabled=true)" .Values.postgresql.host }}{{ end }}
{{- end }}

{{- define "agp.postgresPort" -}}
{{- if .Values.demo.enabled }}5432{{ else }}{{ .Values.postgresql.port }}{{ end }}
{{- end }}

{{- define "agp.s3Endpoint" -}}
{{- if .Values.demo.enabled }}http://{{ include "agp.component" (dict "root" . "name" "minio") }}:9000{{ else }}{{ required "s3.endpoint is required (or demo.enabled=true)" .Values.s3.endpoint }}{{ end }}
{{- end }}

{{- define "agp.keycloakURL" -}}
{{- if .Values.demo.enabled }}
{{- .Values.demo.keycloak.publicURL | default (printf "http://%s:%v" (include "agp.component" (dict "root" . "name" "keycloak")) .Values.demo.keycloak.service.port) | trimSuffix "/" }}
{{- else }}
{{- $issuer := required "keycloak.issuer is required (or demo.enabled=true)" .Values.keycloak.issuer }}
{{- regexReplaceAll "/realms/[^/]+/?$" $issuer "" }}
{{- end }}
{{- end }}

{{- define "agp.realm" -}}
{{- if .Values.demo.enabled }}antigravity{{ else }}{{ regexFind "[^/]+$" (trimSuffix "/" .Values.keycloak.issuer) }}{{ end }}
{{- end }}

{{- define "agp.publicURL" -}}
{{- .Values.hub.publicURL | default (printf "http://%s" (include "agp.component" (dict "root" . "name" "proxy-public"))) | trimSuffix "/" }}
{{- end }}

{{/* The settings every runtime part reads (AGP_CONFIG); secrets are files of the mounted Secret. */}}
{{- define "agp.settings" -}}
host: {{ include "agp.component" (dict "root" . "name" "hub") }}
bind_host: 0.0.0.0
spawner: kubernetes
lab_dir: /srv/agp
cache_dir: /srv/agp/cache
secrets_dir: /etc/agp/secrets
public_url: {{ include "agp.publicURL" . | quote }}
realm: {{ include "agp.realm" . }}
warehouse_bucket: {{ .Values.s3.warehouseBucket }}
trino_spooling_bucket: {{ .Values.s3.spoolingBucket }}
s3_region: {{ .Values.s3.region }}
server_os_users: false
ports:
  postgres: {{ include "agp.postgresPort" . }}
  catalog: 8181
  trino: 8080
  trino_https: 8443
  hub: {{ .Values.proxy.service.port }}
  hub_api: 8081
  proxy_api: 8001
  workspaces: 8091
hosts:
  postgres: {{ include "agp.postgresHost" . }}
  catalog: {{ include "agp.component" (dict "root" . "name" "catalog") }}
  trino: {{ include "agp.component" (dict "root" . "name" "trino") }}
  trino_https: {{ include "agp.component" (dict "root" . "name" "trino") }}
  hub: {{ include "agp.component" (dict "root" . "name" "proxy-public") }}
  proxy_api: {{ include "agp.component" (dict "root" . "name" "proxy-api") }}
urls:
  minio: {{ include "agp.s3Endpoint" . | quote }}
  keycloak: {{ include "agp.keycloakURL" . | quote }}
credentials:
  postgres_user: {{ .Values.postgresql.superuser }}
  s3_access_key: {{ .Values.s3.rootUser }}
{{- end }}

{{/* A JVM size (2G, 1536M) in megabytes */}}
{{- define "agp.megabytes" -}}
{{- $s := upper (toString .) }}
{{- if hasSuffix "G" $s }}{{ mul (trimSuffix "G" $s | int) 1024 }}{{ else if hasSuffix "M" $s }}{{ trimSuffix "M" $s | int }}{{ else }}{{ div ($s | int64) 1048576 }}{{ end }}
{{- end }}

{{/* NetworkPolicy peers: a component of this release, and its workspace servers */}}
{{- define "agp.from" -}}
- podSelector:
    matchLabels:
      app.kubernetes.io/instance: {{ .root.Release.Name }}
      app.kubernetes.io/component: {{ .name }}
{{- end }}
{{- define "agp.fromServers" -}}
- podSelector:
    matchLabels:
      antigravity.io/release: {{ .Release.Name }}
    matchExpressions:
      - {key: antigravity.io/workspace, operator: Exists}
{{- end }}
