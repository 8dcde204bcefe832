{{- /*
What the main Deployment (deployment.yaml) and each shard's Deployment
(shards.yaml) share: the operator container (`helm-operator run`), the
rollout strategy, the pod's identity and security settings, the volumes the
operator needs, and the scheduling settings. One definition, so a shard
never drifts from the main pod. The syncer container stays in
deployment.yaml: shards have none (the main pod's syncer applies Git for
everyone).
*/ -}}

{{/* Seconds in a duration that the schema accepted ("25s", "1m30s", "500ms"). */}}
{{- define "helm-operator.seconds" -}}
{{- $total := 0.0 -}}
{{- range regexFindAll "[0-9]+(ms|h|m|s)" . -1 -}}
{{- $n := regexFind "^[0-9]+" . | float64 -}}
{{- $unit := regexFind "(ms|h|m|s)$" . -}}
{{- $total = addf $total (mulf $n (get (dict "h" 3600.0 "m" 60.0 "s" 1.0 "ms" 0.001) $unit)) -}}
{{- end -}}
{{- $total -}}
{{- end -}}

{{/*
The pod's grace period must outlast the operator's: after SIGTERM helm calls
in flight get operator.shutdownGracePeriod to finish, then the operator stops
them, records their state and releases the Lease; the kubelet's SIGKILL must
not come first (5 s margin for that).
*/}}
{{- define "helm-operator.checkGracePeriods" -}}
{{- $grace := include "helm-operator.seconds" .Values.operator.shutdownGracePeriod | float64 -}}
{{- $pod := .Values.terminationGracePeriodSeconds | float64 -}}
{{- if lt $pod (addf $grace 5.0) -}}
{{- fail (printf "terminationGracePeriodSeconds %v must be at least 5 more than operator.shutdownGracePeriod %s (%v s): the kubelet kills the pod then, before the operator has stopped its helm calls, recorded them and released its Lease" .Values.terminationGracePeriodSeconds .Values.operator.shutdownGracePeriod $grace) -}}
{{- end -}}
{{- end -}}

{{/* Rollout strategy; the argument is true when the pods elect a leader. */}}
{{- define "helm-operator.strategy" -}}
{{- if . }}
# The Lease keeps a new pod waiting until the old leader is gone. Only the
# leader is Ready (/readyz), so new pods cannot become Ready while an old
# one leads: the old pods may all go at once (maxUnavailable 100%); the
# leader finishes its helm call and keeps the Lease until it exits.
type: RollingUpdate
rollingUpdate:
  maxSurge: 1
  maxUnavailable: 100%
{{- else }}
# Without leader election never two operators side by side: the old pod
# stops (finishing its helm call) before the new one starts.
type: Recreate
{{- end }}
{{- end -}}

{{/* Pod template annotations. */}}
{{- define "helm-operator.podAnnotations" -}}
# Roll the pods when the sync sources or known_hosts change.
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
{{- with .Values.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* The start of the pod spec: identity, grace period, priority, pull secrets, security. */}}
{{- define "helm-operator.podIdentity" -}}
serviceAccountName: {{ include "helm-operator.serviceAccountName" . }}
terminationGracePeriodSeconds: {{ .Values.terminationGracePeriodSeconds }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/*
The pod's volumes. Argument: dict root, main (true for the main pod, which
also holds the syncer's sources and https credentials).
*/}}
{{- define "helm-operator.volumes" -}}
{{- $root := .root -}}
{{- $main := .main -}}
{{- with $root -}}
{{- $fullname := include "helm-operator.fullname" . -}}
{{- $ssh := .Values.git.ssh -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
- name: cache
  emptyDir:
    sizeLimit: {{ .Values.cacheSizeLimit }}
{{- if and $main .Values.git.sources }}
- name: sync-config
  configMap:
    name: {{ $fullname }}-sync
{{- end }}
{{- if $ssh.secretName }}
- name: git-ssh
  secret:
    secretName: {{ $ssh.secretName }}
    # Group-readable for the pod's fsGroup; ssh refuses keys others can read.
    defaultMode: 0440
{{- end }}
{{- if $ssh.knownHosts }}
- name: git-known-hosts
  configMap:
    name: {{ $fullname }}-known-hosts
{{- end }}
{{- if and $main .Values.git.https.secretName }}
- name: git-https
  secret:
    secretName: {{ .Values.git.https.secretName }}
    defaultMode: 0440
{{- end }}
{{- if .Values.webhook.token.enabled }}
# The trigger token (webhook.token): the generated Secret or existingSecret.
- name: webhook-token
  secret:
    secretName: {{ include "helm-operator.webhookSecretName" . }}
    defaultMode: 0440
    items:
      - key: {{ if .Values.webhook.token.existingSecret }}{{ .Values.webhook.token.secretKey }}{{ else }}token{{ end }}
        path: token
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
The end of the pod spec: nodeSelector, affinity, tolerations, and
topologySpreadConstraints, where a constraint without a labelSelector gets
the pods' own selector labels. Argument: dict root, labels (the pods'
selector labels, a map).
*/}}
{{- define "helm-operator.podScheduling" -}}
{{- $labels := .labels -}}
{{- with .root.Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .root.Values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- range . }}
  {{- $constraint := . }}
  {{- if not (hasKey $constraint "labelSelector") }}
  {{- $constraint = merge (dict "labelSelector" (dict "matchLabels" $labels)) $constraint }}
  {{- end }}
  - {{ toYaml $constraint | nindent 4 | trim }}
  {{- end }}
{{- end }}
{{- end -}}

{{/*
The operator container, `helm-operator run`. Argument: a dict of
  root       the chart's context
  selector   --watch-label-selector ("": every HelmRelease)
  lease      the Lease's name with leader election ("": none)
  workers, maxParallelInstalls, resources
*/}}
{{- define "helm-operator.operatorContainer" -}}
{{- $root := .root -}}
{{- $selector := .selector -}}
{{- $lease := .lease -}}
{{- $workers := .workers -}}
{{- $installs := .maxParallelInstalls -}}
{{- $resources := .resources -}}
{{- with $root -}}
{{- $cache := include "helm-operator.cacheDir" . -}}
{{- $ssh := .Values.git.ssh -}}
- name: operator
  image: {{ include "helm-operator.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args:
    - run
    - --listen=0.0.0.0:3030
    - --workers={{ $workers }}
    {{- if $installs }}
    # At most this many first installs at once, so upgrades always find a worker.
    - --max-parallel-installs={{ $installs }}
    {{- end }}
    - --charts-sync-interval={{ .Values.operator.chartsSyncInterval }}
    - --git-poll-interval={{ .Values.operator.gitPollInterval }}
    - --git-default-ref={{ .Values.operator.gitDefaultRef }}
    - --drift-detection-interval={{ .Values.operator.driftDetectionInterval }}
    - --cache-dir={{ $cache }}/charts
    - --log-level={{ .Values.operator.logLevel }}
    - --log-format={{ .Values.operator.logFormat }}
    - --api-unreachable-threshold={{ .Values.health.apiUnreachableThreshold }}
    - --loop-stall-threshold={{ .Values.health.loopStallThreshold }}
    # After SIGTERM helm calls in flight may finish this long (below terminationGracePeriodSeconds).
    - --shutdown-grace-period={{ .Values.operator.shutdownGracePeriod }}
    {{- with (include "helm-operator.webhookArgs" (dict "root" . "port" .Values.webhook.ports.operator) | trim) }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- with .Values.tenancy.defaultServiceAccount }}
    # Tenant lockdown: helm acts as this ServiceAccount of each HelmRelease's namespace.
    - --default-service-account={{ . }}
    {{- end }}
    {{- if .Values.tenancy.noCrossNamespaceRefs }}
    - --no-cross-namespace-refs
    {{- end }}
    {{- range .Values.tenancy.externalSources.allow }}
    - --external-source-allow={{ . }}
    {{- end }}
    {{- range .Values.tenancy.externalSources.deny }}
    - --external-source-deny={{ . }}
    {{- end }}
    {{- with .Values.operator.allowNamespace }}
    - --allow-namespace={{ . }}
    {{- end }}
    {{- if $selector }}
    # Sharding: only the HelmReleases (and their release storage) this selector matches.
    - {{ printf "--watch-label-selector=%s" $selector | quote }}
    {{- end }}
    {{- if $lease }}
    # Several replicas: a Lease decides which operator acts.
    - --leader-elect
    - --leader-election-name={{ $lease }}
    - --lease-duration={{ .Values.leaderElection.leaseDuration }}
    {{- end }}
    {{- if .Values.automation.enabled }}
    {{- $first := first (concat .Values.git.sources (list dict)) }}
    {{- $url := .Values.automation.gitUrl | default ($first.url | default "") }}
    {{- if not $url }}{{ fail "automation.enabled needs automation.gitUrl or an entry in git.sources" }}{{ end }}
    # Image automation: commits newer image tags to this repository.
    - --git-url={{ $url }}
    - --git-branch={{ .Values.automation.branch | default ($first.branch | default .Values.git.branch) }}
    {{- range .Values.automation.paths }}
    - --git-path={{ . }}
    {{- end }}
    - --git-user={{ .Values.automation.user }}
    - --git-email={{ .Values.automation.email }}
    {{- if .Values.automation.ciSkip }}
    - --git-ci-skip
    {{- end }}
    - --automation-interval={{ .Values.automation.interval }}
    - --registry-poll-interval={{ .Values.automation.registryPollInterval }}
    - --registry-rate-limit={{ .Values.automation.registryRateLimit }}
    {{- end }}
    {{- if .Values.registry.passFlags }}
    {{- range .Values.registry.secretNames }}
    # dockerconfigjson credentials for the image automation's registry scans.
    - --registry-secret={{ contains "/" . | ternary . (printf "%s/%s" $root.Release.Namespace .) }}
    {{- end }}
    {{- end }}
    {{- range .Values.operator.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  env:
    # Namespace of the leader election Lease (its holder is the pod's
    # hostname, which is the pod's name).
    - name: POD_NAMESPACE
      valueFrom:
        fieldRef:
          fieldPath: metadata.namespace
    # The root filesystem is read-only: helm's config, data and cache,
    # ssh and git live on the emptyDir volumes.
    - name: HOME
      value: /tmp
    - name: HELM_CONFIG_HOME
      value: /tmp/helm/config
    - name: HELM_DATA_HOME
      value: /tmp/helm/data
    - name: HELM_CACHE_HOME
      value: {{ $cache }}/helm
    {{- if $ssh.secretName }}
    # ssh for ssh:// and git@ chart sources of HelmReleases.
    - name: GIT_SSH_COMMAND
      value: >-
        ssh -i {{ include "helm-operator.sshDir" . }}/{{ $ssh.secretKey }} -o IdentitiesOnly=yes
        -o BatchMode=yes -o StrictHostKeyChecking=yes
        {{- if $ssh.knownHosts }}
        -o UserKnownHostsFile={{ include "helm-operator.knownHostsDir" . }}/known_hosts
        {{- end }}
    {{- end }}
    {{- with .Values.operator.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  ports:
    - name: http-operator
      containerPort: 3030
      protocol: TCP
    {{- if .Values.webhook.separatePort }}
    - name: hook-operator
      containerPort: {{ .Values.webhook.ports.operator }}
      protocol: TCP
    {{- end }}
  livenessProbe:
    httpGet:
      path: /healthz
      port: http-operator
    {{- toYaml .Values.probes.liveness | nindent 4 }}
  readinessProbe:
    # Ready: the watch caches are filled and, with leader election, this replica leads.
    httpGet:
      path: /readyz
      port: http-operator
    {{- toYaml .Values.probes.readiness | nindent 4 }}
  resources:
    {{- toYaml $resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    - name: cache
      mountPath: {{ $cache }}
    {{- with (include "helm-operator.gitMounts" . | trim) }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- with (include "helm-operator.webhookMounts" . | trim) }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- with .Values.extraVolumeMounts }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
{{- end }}
{{- end -}}

{{/*
Shards (sharding.shards): the label key HelmReleases are sharded by (as in
Flux), the pods' selector labels of one shard, and the selector of the main
operator, which serves every HelmRelease no listed shard claims.
*/}}
{{- define "helm-operator.shardKey" -}}sharding.fluxcd.io/key{{- end -}}

{{/*
A shard's pods. Their app.kubernetes.io/name differs from the main pod's so
that the main Deployment's (immutable) selector, its Service, PDB and
NetworkPolicy never pick a shard pod (`kubectl logs deploy/<fullname>` and
`exec ... -c syncer` keep reaching the main pod). Argument: dict root, shard.
*/}}
{{- define "helm-operator.shardSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-shard" (include "helm-operator.name" .root) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
helm.fluxcd.io/shard: {{ .shard.name }}
{{- end -}}

{{/* Every shard's pods (for the shards' Service and NetworkPolicy). */}}
{{- define "helm-operator.shardsSelectorLabels" -}}
app.kubernetes.io/name: {{ printf "%s-shard" (include "helm-operator.name" .) | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Name of the Service and NetworkPolicy covering every shard (a Service name has at most 63 characters). */}}
{{- define "helm-operator.shardsName" -}}
{{- printf "%s-shards" (include "helm-operator.fullname" . | trunc 56 | trimSuffix "-") -}}
{{- end -}}

{{/* The main operator's --watch-label-selector: "" without shards. */}}
{{- define "helm-operator.mainSelector" -}}
{{- $names := list -}}
{{- range .Values.sharding.shards }}{{ $names = append $names .name }}{{ end -}}
{{- if $names -}}
{{- printf "%s notin (%s)" (include "helm-operator.shardKey" .) (join "," $names) -}}
{{- end -}}
{{- end -}}

{{/* A shard's replicas: its own replicaCount, else the chart's (0 is a valid choice). */}}
{{- define "helm-operator.shardReplicas" -}}
{{- if hasKey .shard "replicaCount" -}}{{ .shard.replicaCount }}{{- else -}}{{ .root.Values.replicaCount }}{{- end -}}
{{- end -}}

{{/* "true" when a shard elects a leader: leaderElection.enabled, or more than one replica. */}}
{{- define "helm-operator.shardElects" -}}
{{- if or .root.Values.leaderElection.enabled (gt (int (include "helm-operator.shardReplicas" .)) 1) -}}true{{- end -}}
{{- end -}}
