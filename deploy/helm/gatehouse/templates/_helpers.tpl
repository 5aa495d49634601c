{{/* Chart name, truncated to the 63 characters of a DNS label. */}}
{{- define "gatehouse.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; components append "-control-plane" etc., so keep room. */}}
{{- define "gatehouse.fullname" -}}
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

{{- define "gatehouse.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "gatehouse.labels" -}}
helm.sh/chart: {{ include "gatehouse.chart" . }}
app.kubernetes.io/name: {{ include "gatehouse.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: gatehouse
{{- end }}

{{/* Selector labels of one component: call with (dict "ctx" $ "component" "data-plane"). */}}
{{- define "gatehouse.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gatehouse.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* The Secret the planes read: the user's, or the chart's. */}}
{{- define "gatehouse.secretName" -}}
{{- if .Values.secrets.existingSecret }}
{{- .Values.secrets.existingSecret }}
{{- else }}
{{- include "gatehouse.fullname" . }}
{{- end }}
{{- end }}

{{/* Image reference: call with (dict "ctx" $ "image" .Values.image.dataPlane). */}}
{{- define "gatehouse.image" -}}
{{- printf "%s:%s" .image.repository (default .ctx.Chart.AppVersion .ctx.Values.image.tag | toString) }}
{{- end }}

{{/*
Fails rendering early, with a readable message, on values that would only fail at run time.
*/}}
{{- define "gatehouse.validate" -}}
{{- if not .Values.secrets.existingSecret }}
{{- if not .Values.secrets.databaseUrl }}
{{- fail "set secrets.databaseUrl (or secrets.existingSecret)" }}
{{- end }}
{{- if not .Values.secrets.encryptionKeys }}
{{- fail "set secrets.encryptionKeys (or secrets.existingSecret): k1:$(openssl rand -hex 32)" }}
{{- end }}
{{- if not (regexMatch "^[A-Za-z0-9_-]{1,32}:[0-9a-fA-F]{64}(,[A-Za-z0-9_-]{1,32}:[0-9a-fA-F]{64})*$" .Values.secrets.encryptionKeys) }}
{{- fail "secrets.encryptionKeys must be id:64-hex-digits[,id:64-hex-digits...] (ids: 1 to 32 letters, digits, - or _)" }}
{{- end }}
{{- if and .Values.secrets.bootstrapAdminKey (not (regexMatch "^gh_[0-9a-f]{48}$" .Values.secrets.bootstrapAdminKey)) }}
{{- fail "secrets.bootstrapAdminKey must be gh_ followed by 48 lowercase hex digits" }}
{{- end }}
{{- end }}
{{- with .Values.dataPlane.snapshotFile }}
{{- if and .enabled (not $.Values.secrets.existingSecret) (not (regexMatch "^[0-9a-fA-F]{64}$" ($.Values.secrets.snapshotKey | toString))) }}
{{- fail "dataPlane.snapshotFile.enabled needs secrets.snapshotKey: 64 hex digits (openssl rand -hex 32)" }}
{{- end }}
{{- end }}
{{- $s := .Values.dataPlane.shutdown }}
{{- if ge (add (int $s.preStopSleepSeconds) (int $s.graceSeconds)) (int $s.terminationGracePeriodSeconds) }}
{{- fail "dataPlane.shutdown: preStopSleepSeconds + graceSeconds must stay below terminationGracePeriodSeconds, or streams are killed before they drain" }}
{{- end }}
{{- end }}

{{/*
Environment both planes take from the Secret. The bootstrap admin key is optional: an empty
value would be read as a malformed key, so the variable is left out unless the Secret has it.
*/}}
{{- define "gatehouse.secretEnv" -}}
- name: DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "gatehouse.secretName" . }}
      key: {{ .Values.secrets.keys.databaseUrl }}
- name: GATEHOUSE_ENCRYPTION_KEYS
  valueFrom:
    secretKeyRef:
      name: {{ include "gatehouse.secretName" . }}
      key: {{ .Values.secrets.keys.encryptionKeys }}
{{- end }}

{{/*
Plain env from a map, sorted by name (stable renders, no spurious rollouts). An empty or null
value leaves the variable unset, so the binary's default applies: several options (e.g.
MAX_CONFIG_AGE_SECONDS) refuse an empty string.
*/}}
{{- define "gatehouse.envFromMap" -}}
{{- range $name, $value := . }}
{{- if not (or (kindIs "invalid" $value) (eq (toString $value) "")) }}
- name: {{ $name }}
  value: {{ $value | toString | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* A checksum of the chart's Secret, so pods roll when a key or the database URL changes. */}}
{{- define "gatehouse.secretChecksum" -}}
{{- if not .Values.secrets.existingSecret }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end }}
{{- end }}
