{{/* Refuse values that would deploy something that cannot work, with a message saying why. */}}
{{- define "alm.validate" -}}
{{- $v := .Values -}}
{{- $partitions := int $v.kafka.partitions -}}
{{- if not $v.kafka.bootstrap -}}
{{- fail "kafka.bootstrap is required: your Kafka's bootstrap servers, host:port[,host:port]" -}}
{{- end -}}
{{- if not (include "alm.cassandraHosts" .) -}}
{{- fail "cassandra.hosts is required: your Cassandra's contact points, \"a,b\" or a list" -}}
{{- end -}}
{{- $agg := $v.aggregator -}}
{{- if $agg.autoscaling.enabled -}}
{{- if gt (int $agg.autoscaling.maxReplicas) $partitions -}}
{{- fail (printf "aggregator.autoscaling.maxReplicas (%d) is more than kafka.partitions (%d): the workers beyond one per partition of alm.metrics.raw would idle" (int $agg.autoscaling.maxReplicas) $partitions) -}}
{{- end -}}
{{- if gt (int $agg.autoscaling.minReplicas) (int $agg.autoscaling.maxReplicas) -}}
{{- fail "aggregator.autoscaling.minReplicas is more than maxReplicas" -}}
{{- end -}}
{{- else if gt (int $agg.replicas) $partitions -}}
{{- fail (printf "aggregator.replicas (%d) is more than kafka.partitions (%d): the workers beyond one per partition of alm.metrics.raw would idle" (int $agg.replicas) $partitions) -}}
{{- end -}}
{{- range $name := include "alm.enabledSources" . | fromJsonArray -}}
{{- $source := index $v.sources $name -}}
{{- $config := include "alm.sourceConfig" (dict "root" $ "name" $name) | fromYaml -}}
{{- $replicas := ternary (int $config.autoscaling.maxReplicas) (int $config.replicas) $config.autoscaling.enabled -}}
{{- if gt $replicas $partitions -}}
{{- fail (printf "sources.%s: %d replicas is more than kafka.partitions (%d) of alm.refresh.%s" $name $replicas $partitions $name) -}}
{{- end -}}
{{- if and $config.autoscaling.enabled (gt (int $config.autoscaling.minReplicas) (int $config.autoscaling.maxReplicas)) -}}
{{- fail (printf "sources.%s: autoscaling.minReplicas is more than maxReplicas" $name) -}}
{{- end -}}
{{- $settings := $source.settings | default dict -}}
{{- $keyed := or $source.apiKey (dig "apiKeySecret" "name" "" $source) $v.apiKeysSecret -}}
{{- if and (eq $name "mendeley") (not $keyed) (not (and $settings.client_id $settings.client_secret)) -}}
{{- fail "sources.mendeley needs client credentials: apiKey or apiKeySecret \"client_id:client_secret\" (or apiKeysSecret with ALM_MENDELEY_API_KEY, or settings client_id and client_secret)" -}}
{{- end -}}
{{- if and (eq $name "counter") (not (and $source.baseUrl $settings.customer_id)) -}}
{{- fail "sources.counter needs baseUrl (your platform's SUSHI server) and settings.customer_id" -}}
{{- end -}}
{{- end -}}
{{- $auth := $v.cassandra.auth -}}
{{- if and $auth.password (not $auth.username) -}}
{{- fail "cassandra.auth.password is set but cassandra.auth.username is not" -}}
{{- end -}}
{{- if and $auth.username (not $auth.password) (not $auth.existingSecret) -}}
{{- fail "cassandra.auth.username is set but neither cassandra.auth.password nor cassandra.auth.existingSecret is" -}}
{{- end -}}
{{- $tls := $v.cassandra.tls -}}
{{- if and (or $tls.existingSecret $tls.certKey $tls.keyKey) (not $tls.enabled) -}}
{{- fail "cassandra.tls.existingSecret, certKey or keyKey is set but cassandra.tls.enabled is false" -}}
{{- end -}}
{{- if ne (empty $tls.certKey) (empty $tls.keyKey) -}}
{{- fail "cassandra.tls.certKey and keyKey go together (mutual TLS needs both the certificate and its key)" -}}
{{- end -}}
{{- if and $tls.certKey (not $tls.existingSecret) -}}
{{- fail "cassandra.tls.certKey needs cassandra.tls.existingSecret, the Secret that holds it" -}}
{{- end -}}
{{- end -}}
