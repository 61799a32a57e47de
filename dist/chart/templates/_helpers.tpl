{{/*
The chart name, truncated to 63 characters (a label value).
*/}}
{{- define "netpol2authz.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The prefix of every object's name: the release name, followed by the chart
name unless the release name already contains it.
*/}}
{{- define "netpol2authz.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := include "netpol2authz.name" . }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
An object's name: the prefix and a suffix, within 63 characters.
Call with (dict "suffix" "controller-manager" "context" $).
*/}}
{{- define "netpol2authz.resourceName" -}}
{{- $prefix := include "netpol2authz.fullname" .context | trunc (int (sub 62 (len .suffix))) | trimSuffix "-" }}
{{- printf "%s-%s" $prefix .suffix }}
{{- end }}

{{/*
Labels of every object.
*/}}
{{- define "netpol2authz.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "netpol2authz.selectorLabels" . }}
{{- with .Chart.AppVersion }}
app.kubernetes.io/version: {{ . | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/*
Labels that select the manager's pods (never change them on upgrade: a
Deployment's selector is immutable).
*/}}
{{- define "netpol2authz.selectorLabels" -}}
app.kubernetes.io/name: {{ include "netpol2authz.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
control-plane: controller-manager
{{- end }}

{{/*
The manager's ServiceAccount.
*/}}
{{- define "netpol2authz.serviceAccountName" -}}
{{- include "netpol2authz.resourceName" (dict "suffix" "controller-manager" "context" .) }}
{{- end }}

{{/*
The manager's image: repository:tag, or repository@digest when the tag is a
digest.
*/}}
{{- define "netpol2authz.image" -}}
{{- $tag := .Values.manager.image.tag | default .Chart.AppVersion | toString }}
{{- if hasPrefix "sha256:" $tag }}
{{- printf "%s@%s" .Values.manager.image.repository $tag }}
{{- else }}
{{- printf "%s:%s" .Values.manager.image.repository $tag }}
{{- end }}
{{- end }}

{{/*
The scheme (and Service port name) of the metrics endpoint.
*/}}
{{- define "netpol2authz.metricsScheme" -}}
{{- if .Values.metrics.secure }}https{{ else }}http{{ end }}
{{- end }}
