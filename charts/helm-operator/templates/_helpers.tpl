{{/* Name of the chart, overridable. */}}
{{- define "helm-operator.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: the release name, suffixed with the chart name unless it contains it. */}}
{{- define "helm-operator.fullname" -}}
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

{{- define "helm-operator.selectorLabels" -}}
app.kubernetes.io/name: {{ include "helm-operator.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "helm-operator.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "helm-operator.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "helm-operator.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "helm-operator.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "helm-operator.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* "true" when any Git source garbage-collects (or reports what it would). */}}
{{- define "helm-operator.gc" -}}
{{- range .Values.git.sources -}}
{{- if or .garbageCollection .garbageCollectionDryRun -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* Mount points shared by the templates. */}}
{{- define "helm-operator.sshDir" -}}/etc/helm-operator/ssh{{- end -}}
{{- define "helm-operator.knownHostsDir" -}}/etc/helm-operator/known-hosts{{- end -}}
{{- define "helm-operator.httpsDir" -}}/etc/helm-operator/git-https{{- end -}}
{{- define "helm-operator.configDir" -}}/etc/helm-operator/sync{{- end -}}
{{- define "helm-operator.cacheDir" -}}/var/cache/helm-operator{{- end -}}
{{- define "helm-operator.webhookDir" -}}/etc/helm-operator/webhook{{- end -}}

{{/* The Secret holding the trigger token: existingSecret, or the one the chart generates. */}}
{{- define "helm-operator.webhookSecretName" -}}
{{- .Values.webhook.token.existingSecret | default (printf "%s-webhook" (include "helm-operator.fullname" .)) -}}
{{- end -}}

{{/* Arguments both containers get for their triggers; the port is the container's. */}}
{{- define "helm-operator.webhookArgs" -}}
{{- if .root.Values.webhook.token.enabled }}
- --webhook-token-file={{ include "helm-operator.webhookDir" .root }}/token
{{- end }}
{{- if .root.Values.webhook.separatePort }}
- --webhook-listen=0.0.0.0:{{ .port }}
{{- end }}
{{- end -}}

{{/* ssh key and known_hosts mounts, the same in both containers. */}}
{{- define "helm-operator.gitMounts" -}}
{{- if .Values.git.ssh.secretName }}
- name: git-ssh
  mountPath: {{ include "helm-operator.sshDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.git.ssh.knownHosts }}
- name: git-known-hosts
  mountPath: {{ include "helm-operator.knownHostsDir" . }}
  readOnly: true
{{- end }}
{{- end -}}

{{/* The trigger token, mounted in both containers. */}}
{{- define "helm-operator.webhookMounts" -}}
{{- if .Values.webhook.token.enabled }}
- name: webhook-token
  mountPath: {{ include "helm-operator.webhookDir" . }}
  readOnly: true
{{- end }}
{{- end -}}
