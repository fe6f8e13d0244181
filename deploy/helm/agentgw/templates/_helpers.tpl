{{- define "agentgw.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}
{{- define "agentgw.labels" -}}
app.kubernetes.io/name: agentgw-controller
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/part-of: agentgw
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "agentgw.proxyEnv" -}}
{{- $env := list -}}
{{- if .Values.tracing.otlpEndpoint -}}
{{- $env = append $env (dict "name" "AGENTGW_TRACING_ENDPOINT" "value" .Values.tracing.otlpEndpoint) -}}
{{- $env = append $env (dict "name" "AGENTGW_TRACING_PROTOCOL" "value" .Values.tracing.protocol) -}}
{{- end -}}
{{- if .Values.redis.enabled -}}
{{- $env = append $env (dict "name" "AGENTGW_REDIS_URL" "value" .Values.redis.url) -}}
{{- end -}}
{{- toJson $env -}}
{{- end -}}
