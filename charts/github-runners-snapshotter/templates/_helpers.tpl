{{/* The release's full name: the chart name, prefixed by the release unless it holds it. */}}
{{- define "snapshotter.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "snapshotter.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "snapshotter.labels" -}}
{{ include "snapshotter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "snapshotter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "snapshotter.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* Whether finalizer capture is on (it needs `patch` on ephemeralrunners). */}}
{{- define "snapshotter.finalizerCapture" -}}
{{- if (.Values.config.finalizer_capture | default dict).enabled -}}true{{- end -}}
{{- end -}}

{{- define "snapshotter.leaderElection" -}}
{{- if (.Values.config.leader_election | default dict).enabled -}}true{{- end -}}
{{- end -}}
