{{/* The chart's name, or nameOverride. */}}
{{- define "swimlb.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every object name: fullnameOverride, else the release name when it already
contains the chart's name (release "swimlb" gives swimlb-controller, as deploy/ names it), else
<release>-<name>. Kept to 47 characters so the longest suffix (-controller-config) fits 63.
*/}}
{{- define "swimlb.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 47 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "swimlb.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 47 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 47 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "swimlb.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select this release's pods (immutable once installed). */}}
{{- define "swimlb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "swimlb.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Labels on every object the chart renders. */}}
{{- define "swimlb.labels" -}}
helm.sh/chart: {{ include "swimlb.chart" . }}
{{ include "swimlb.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* image: "<repository>/<component>:<tag>"; call with (list $ "speaker"). */}}
{{- define "swimlb.image" -}}
{{- $root := index . 0 -}}
{{- printf "%s/%s:%s" $root.Values.image.repository (index . 1) ($root.Values.image.tag | default $root.Chart.AppVersion) -}}
{{- end -}}

{{/* The Pod Security labels the release namespace needs: the speaker runs on the host network
with NET_RAW, which only the privileged level admits. */}}
{{- define "swimlb.podSecurityLabels" -}}
pod-security.kubernetes.io/enforce: privileged
pod-security.kubernetes.io/audit: privileged
pod-security.kubernetes.io/warn: privileged
{{- end -}}

{{/* The policy API of PodDisruptionBudget the cluster serves: policy/v1 from 1.21 on (the only
one from 1.25 on), policy/v1beta1 on 1.20. */}}
{{- define "swimlb.pdbApiVersion" -}}
{{- if or (.Capabilities.APIVersions.Has "policy/v1/PodDisruptionBudget") (semverCompare ">=1.21-0" .Capabilities.KubeVersion.Version) -}}
policy/v1
{{- else -}}
policy/v1beta1
{{- end -}}
{{- end -}}
