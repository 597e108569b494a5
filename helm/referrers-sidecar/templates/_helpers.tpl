{{/* Names, labels and the facts derived from the Harbor release this chart sits beside. */}}

{{- define "referrers-sidecar.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "referrers-sidecar.fullname" -}}
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

{{- define "referrers-sidecar.selectorLabels" -}}
app.kubernetes.io/name: {{ include "referrers-sidecar.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "referrers-sidecar.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "referrers-sidecar.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/component: referrers-sidecar
app.kubernetes.io/part-of: {{ .Values.harbor.name }}
{{- end -}}

{{/* harbor-helm's matchLabels: what its ServiceMonitor selects Services by. */}}
{{- define "referrers-sidecar.harborMatchLabels" -}}
release: {{ .Values.harbor.releaseName }}
app: {{ .Values.harbor.name | quote }}
{{- end -}}

{{- define "referrers-sidecar.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "referrers-sidecar.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "referrers-sidecar.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* harbor-helm's fullname, derived as harbor-helm derives it. */}}
{{- define "referrers-sidecar.harborFullname" -}}
{{- if .Values.harbor.fullname -}}
{{- .Values.harbor.fullname | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Values.harbor.name .Values.harbor.releaseName -}}
{{- .Values.harbor.releaseName | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Values.harbor.releaseName .Values.harbor.name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "referrers-sidecar.harborNamespace" -}}
{{- default .Release.Namespace .Values.harbor.namespace -}}
{{- end -}}

{{/* A Harbor Service's host name: short in the same namespace, <svc>.<ns>.svc across. */}}
{{- define "referrers-sidecar.harborServiceHost" -}}
{{- $ns := include "referrers-sidecar.harborNamespace" .root -}}
{{- if eq $ns .root.Release.Namespace -}}
{{- .service -}}
{{- else -}}
{{- printf "%s.%s.svc" .service $ns -}}
{{- end -}}
{{- end -}}

{{- define "referrers-sidecar.coreHost" -}}
{{- include "referrers-sidecar.harborServiceHost" (dict "root" . "service" (printf "%s-core" (include "referrers-sidecar.harborFullname" .))) -}}
{{- end -}}

{{- define "referrers-sidecar.coreURL" -}}
{{- if .Values.harbor.coreURL -}}
{{- .Values.harbor.coreURL -}}
{{- else if .Values.harbor.internalTLS.enabled -}}
{{- printf "https://%s:443" (include "referrers-sidecar.coreHost" .) -}}
{{- else -}}
{{- printf "http://%s:80" (include "referrers-sidecar.coreHost" .) -}}
{{- end -}}
{{- end -}}

{{- define "referrers-sidecar.redisHost" -}}
{{- if .Values.harbor.redis.host -}}
{{- .Values.harbor.redis.host -}}
{{- else -}}
{{- include "referrers-sidecar.harborServiceHost" (dict "root" . "service" (printf "%s-redis" (include "referrers-sidecar.harborFullname" .))) -}}
{{- end -}}
{{- end -}}

{{- define "referrers-sidecar.redisURL" -}}
{{- if .Values.config.cache.redis_url -}}
{{- .Values.config.cache.redis_url -}}
{{- else -}}
{{- printf "redis://%s:%v/%v" (include "referrers-sidecar.redisHost" .) .Values.harbor.redis.port .Values.harbor.redis.databaseIndex -}}
{{- end -}}
{{- end -}}

{{- define "referrers-sidecar.internalCASecret" -}}
{{- default (printf "%s-core-internal-tls" (include "referrers-sidecar.harborFullname" .)) .Values.harbor.internalTLS.caSecretName -}}
{{- end -}}

{{/* Whether this chart's own Secret has anything to hold. */}}
{{- define "referrers-sidecar.ownSecretNeeded" -}}
{{- $needed := and .Values.harbor.robot.password (not .Values.harbor.robot.existingSecret) -}}
{{- if and .Values.webhook.authHeader (not .Values.webhook.existingSecret) -}}{{- $needed = true -}}{{- end -}}
{{- range $alias, $r := .Values.upstreamRegistries -}}
{{- if and $r.password (not $r.existingSecret) -}}{{- $needed = true -}}{{- end -}}
{{- end -}}
{{- if $needed -}}true{{- end -}}
{{- end -}}

{{/* Whether Harbor's webhooks are received: an auth header is given, inline or in a Secret. */}}
{{- define "referrers-sidecar.webhookOn" -}}
{{- if or .Values.webhook.authHeader .Values.webhook.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* The projects served whatever their labels (config.projects.enabled; null is none). */}}
{{- define "referrers-sidecar.enabledProjects" -}}
{{- $projects := default dict .Values.config.projects -}}
{{- default list $projects.enabled | toJson -}}
{{- end -}}

{{- define "referrers-sidecar.secretDir" -}}/etc/referrers-sidecar/secrets{{- end -}}

{{/* The configuration file: the values' `config`, with everything the chart derives. */}}
{{- define "referrers-sidecar.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- $_ := set $cfg "listen" (printf "[::]:%v" .Values.service.port) -}}
{{- $_ := set $cfg "metrics_listen" (printf "[::]:%v" .Values.service.metricsPort) -}}
{{- $harbor := default dict $cfg.harbor -}}
{{- $_ := set $harbor "url" (include "referrers-sidecar.coreURL" .) -}}
{{- if .Values.harbor.internalTLS.enabled -}}
{{- $_ := set $harbor "ca_file" "/etc/referrers-sidecar/harbor-ca/ca.crt" -}}
{{- end -}}
{{- $_ := set $harbor "username" .Values.harbor.robot.username -}}
{{- if or .Values.harbor.robot.password .Values.harbor.robot.existingSecret -}}
{{- $_ := set $harbor "password_file" (printf "%s/harbor/password" (include "referrers-sidecar.secretDir" .)) -}}
{{- else -}}
{{- $_ := set $harbor "password_file" nil -}}
{{- end -}}
{{- $_ := set $cfg "harbor" $harbor -}}
{{- /* Helm drops a null value, so "" is how the values turn a label off. */ -}}
{{- $projects := default dict $cfg.projects -}}
{{- range $key := list "label" "store_label" -}}
{{- if and (hasKey $projects $key) (not (get $projects $key)) -}}
{{- $_ := set $projects $key nil -}}
{{- end -}}
{{- end -}}
{{- /* `enabled: null` (or none) is an empty list here: served by the label alone, not the
     binary's own default. */ -}}
{{- $_ := set $projects "enabled" (default list $projects.enabled) -}}
{{- $_ := set $cfg "projects" $projects -}}
{{- with .Values.trace -}}
{{- if .enabled -}}
{{- if ne (default "otel" .provider) "otel" -}}
{{- fail (printf "trace.provider %s: the sidecar exports OTLP only (provider otel); Jaeger takes OTLP on port 4318 since 1.35" .provider) -}}
{{- end -}}
{{- $otel := default dict .otel -}}
{{- $endpoint := printf "%s://%s%s" (ternary "http" "https" (ne $otel.insecure false)) (required "trace.otel.endpoint: the collector's host:port" $otel.endpoint) (default "/v1/traces" $otel.url_path) -}}
{{- $_ := set $cfg "trace" (dict "enabled" true "otlp_endpoint" $endpoint "sample_rate" (default 1 .sample_rate) "service_name" (default "referrers-sidecar" .service_name) "timeout" (printf "%vs" (default 10 $otel.timeout))) -}}
{{- end -}}
{{- end -}}
{{- $cache := default dict $cfg.cache -}}
{{- $_ := set $cache "redis_url" (include "referrers-sidecar.redisURL" .) -}}
{{- $_ := set $cfg "cache" $cache -}}
{{- $registries := dict -}}
{{- range $alias, $r := .Values.upstreamRegistries -}}
{{- $entry := dict "harbor_registry" (toString $r.harbor_registry) "host" $r.host -}}
{{- if $r.type }}{{- $_ := set $entry "type" $r.type -}}{{- end -}}
{{- if $r.url }}{{- $_ := set $entry "url" $r.url -}}{{- end -}}
{{- if $r.insecure }}{{- $_ := set $entry "insecure" true -}}{{- end -}}
{{- if $r.username }}{{- $_ := set $entry "username" $r.username -}}{{- end -}}
{{- if or $r.password $r.existingSecret -}}
{{- $_ := set $entry "password_file" (printf "%s/registries/%s/password" (include "referrers-sidecar.secretDir" $) $alias) -}}
{{- end -}}
{{- $_ := set $registries $alias $entry -}}
{{- end -}}
{{- $_ := set $cfg "registries" $registries -}}
{{- $webhook := default dict $cfg.webhook -}}
{{- if include "referrers-sidecar.webhookOn" . -}}
{{- $_ := set $webhook "auth_header_file" (printf "%s/webhook/auth-header" (include "referrers-sidecar.secretDir" .)) -}}
{{- end -}}
{{- $_ := set $cfg "webhook" $webhook -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* Never through the egress proxy: core, Redis and cluster-local names. */}}
{{- define "referrers-sidecar.noProxy" -}}
{{- $list := list (include "referrers-sidecar.coreHost" .) (include "referrers-sidecar.redisHost" .) ".svc" ".cluster.local" "localhost" "127.0.0.1" -}}
{{- with .Values.egressProxy.noProxy }}{{- $list = append $list . -}}{{- end -}}
{{- join "," $list -}}
{{- end -}}

{{/* NetworkPolicy peers: `value` when it is a list ([] is any pod, rendered as no `from`),
     else the chart's default for it. Called with (list $value $defaultTemplate $). */}}
{{- define "referrers-sidecar.peers" -}}
{{- $value := index . 0 -}}
{{- if kindIs "slice" $value -}}
{{- with $value }}
from:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- else }}
from:
  {{- include (index . 1) (index . 2) | trim | nindent 2 }}
{{- end -}}
{{- end -}}

{{/* The front proxy of routing.mode, as NetworkPolicy peers (networkPolicy.ingressFrom: null). */}}
{{- define "referrers-sidecar.frontProxyPeers" -}}
{{- $mode := .Values.routing.mode -}}
{{- if eq $mode "ingress" -}}
{{- if ne .Values.routing.ingress.controller "ingress-nginx" -}}
{{- fail "networkPolicy: no default front proxy for routing.ingress.controller other; name its pods in networkPolicy.ingressFrom (or [] to admit any pod)" -}}
{{- end -}}
- namespaceSelector: {}
  podSelector:
    matchLabels:
      app.kubernetes.io/name: ingress-nginx
      app.kubernetes.io/component: controller
{{- else if eq $mode "traefik" -}}
- namespaceSelector: {}
  podSelector:
    matchLabels:
      app.kubernetes.io/name: traefik
{{- else if eq $mode "gateway" -}}
{{- range .Values.routing.gateway.parentRefs }}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ .namespace | default $.Release.Namespace | quote }}
  podSelector:
    matchLabels:
      gateway.networking.k8s.io/gateway-name: {{ .name | quote }}
{{- end }}
{{- else -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ include "referrers-sidecar.harborNamespace" . | quote }}
  podSelector:
    matchLabels:
      {{- include "referrers-sidecar.harborMatchLabels" . | nindent 6 }}
      component: nginx
{{- end -}}
{{- end -}}

{{/* Harbor's job service, as NetworkPolicy peers (networkPolicy.jobserviceFrom: null). */}}
{{- define "referrers-sidecar.jobservicePeers" -}}
- namespaceSelector:
    matchLabels:
      kubernetes.io/metadata.name: {{ include "referrers-sidecar.harborNamespace" . | quote }}
  podSelector:
    matchLabels:
      {{- include "referrers-sidecar.harborMatchLabels" . | nindent 6 }}
      component: jobservice
{{- end -}}

{{/* Prometheus, as NetworkPolicy peers (networkPolicy.metricsFrom: null). */}}
{{- define "referrers-sidecar.prometheusPeers" -}}
- namespaceSelector: {}
  podSelector:
    matchLabels:
      app.kubernetes.io/name: prometheus
{{- end -}}
