{{/* The chart's name, or nameOverride. */}}
{{- define "snapshotter.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The release's full name: fullnameOverride, else the name prefixed by the release
unless the release name holds it already. */}}
{{- define "snapshotter.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "snapshotter.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Where the namespaced objects (and the pods) go. */}}
{{- define "snapshotter.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{- define "snapshotter.selectorLabels" -}}
app.kubernetes.io/name: {{ include "snapshotter.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "snapshotter.labels" -}}
{{ include "snapshotter.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "snapshotter.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "snapshotter.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The ServiceAccount as the API server names the requests it makes. */}}
{{- define "snapshotter.serviceAccountUser" -}}
system:serviceaccount:{{ include "snapshotter.namespace" . }}:{{ include "snapshotter.serviceAccountName" . }}
{{- end -}}

{{- define "snapshotter.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- end -}}

{{/* Whether finalizer capture is on (it needs `patch` on ephemeralrunners). */}}
{{- define "snapshotter.finalizerCapture" -}}
{{- if (.Values.config.finalizer_capture | default dict).enabled -}}true{{- end -}}
{{- end -}}

{{- define "snapshotter.leaderElection" -}}
{{- if (.Values.config.leader_election | default dict).enabled -}}true{{- end -}}
{{- end -}}

{{/* Replicas: as configured with leader election; exactly one without it, because
the database fence (the leader's epoch) is then off and two replicas would both
write. */}}
{{- define "snapshotter.replicas" -}}
{{- if include "snapshotter.leaderElection" . -}}{{ .Values.replicaCount }}{{- else -}}1{{- end -}}
{{- end -}}

{{/* The metrics port; empty when config.metrics.port is 0 (no HTTP server). Not
`default`: sprig's default treats 0 as unset. */}}
{{- define "snapshotter.metricsPort" -}}
{{- $metrics := .Values.config.metrics | default dict -}}
{{- if not (hasKey $metrics "port") -}}8080
{{- else if $metrics.port -}}{{ $metrics.port }}
{{- end -}}
{{- end -}}

{{/* The Lease, as the snapshotter names it (settings.py: lease_name). */}}
{{- define "snapshotter.leaseNamespace" -}}
{{- (.Values.config.leader_election | default dict).namespace | default (include "snapshotter.namespace" .) -}}
{{- end -}}

{{- define "snapshotter.leaseName" -}}
{{- $election := .Values.config.leader_election | default dict -}}
{{- if $election.lease_name -}}
{{- $election.lease_name -}}
{{- else if .Values.config.cluster_name -}}
github-runners-snapshotter-{{ .Values.config.cluster_name }}
{{- else -}}
github-runners-snapshotter
{{- end -}}
{{- end -}}

{{/* Namespaced RBAC: asked for, or implied by config.namespaces. */}}
{{- define "snapshotter.namespacedRbac" -}}
{{- if or .Values.rbac.namespaced .Values.config.namespaces -}}true{{- end -}}
{{- end -}}

{{/* The namespaces whose runners the admission policies cover (a JSON list; empty:
every namespace). */}}
{{- define "snapshotter.runnerNamespaces" -}}
{{- .Values.admissionPolicy.runnerNamespaces | default .Values.config.namespaces | default list | toJson -}}
{{- end -}}

{{/* PromQL label matchers of this release's series (as a ServiceMonitor scrapes them:
job = the Service's name). */}}
{{- define "snapshotter.ruleSelector" -}}
{{- .Values.prometheusRule.selector | default (printf "job=%q,namespace=%q" (include "snapshotter.fullname" .) (include "snapshotter.namespace" .)) -}}
{{- end -}}

{{/* Values that must not be set: fail with what to do instead. */}}
{{- define "snapshotter.validate" -}}
{{- if (.Values.config.database | default dict).url -}}
{{- fail "config.database.url must not be set in the values: it would put the password in a ConfigMap. Put the URL in a Secret and name it in database.existingSecret (key database.urlKey)." -}}
{{- end -}}
{{- if and .Values.rbac.namespaced (not .Values.config.namespaces) -}}
{{- fail "rbac.namespaced needs config.namespaces: the namespaces to read (and to grant Roles in)" -}}
{{- end -}}
{{- end -}}

{{/* A policy binding's matchResources: the runner namespaces (none: every namespace). */}}
{{- define "snapshotter.runnerNamespaceSelector" -}}
{{- $namespaces := include "snapshotter.runnerNamespaces" . | fromJsonArray -}}
{{- if $namespaces -}}
matchResources:
  namespaceSelector:
    matchExpressions:
      - key: kubernetes.io/metadata.name
        operator: In
        values:
          {{- toYaml $namespaces | nindent 10 }}
{{- end }}
{{- end -}}
