{{/* The API's own settings as environment: its works cache, and its access settings
(services/api/access.py, docs/access.md). */}}
{{- define "alm.accessEnv" -}}
{{- $a := .Values.api.access -}}
- name: ALM_API_WORK_CACHE_SECONDS
  value: {{ .Values.api.workCacheSeconds | quote }}
- name: ALM_API_WORK_CACHE_MB
  value: {{ .Values.api.workCacheMb | quote }}
- name: ALM_API_REQUIRE_KEY
  value: {{ ternary "true" "false" $a.requireKey | quote }}
- name: ALM_API_SIGNUP
  value: {{ ternary "true" "false" $a.signup | quote }}
- name: ALM_API_KEY_CACHE_SECONDS
  value: {{ $a.keyCacheSeconds | quote }}
{{- with $a.rateAnonymous }}
- name: ALM_API_RATE_ANONYMOUS
  value: {{ . | quote }}
{{- end }}
{{- with $a.rateReader }}
- name: ALM_API_RATE_READER
  value: {{ . | quote }}
{{- end }}
{{- with $a.rateAdmin }}
- name: ALM_API_RATE_ADMIN
  value: {{ . | quote }}
{{- end }}
{{- with $a.rateSignup }}
- name: ALM_API_RATE_SIGNUP
  value: {{ . | quote }}
{{- end }}
{{- with $a.trustedProxies }}
- name: ALM_API_TRUSTED_PROXIES
  value: {{ join "," . | quote }}
{{- end }}
{{- if $a.adminKeySecret.name }}
- name: ALM_API_ADMIN_KEY_FILE
  value: /etc/alm/api/admin.key
{{- end }}
{{- end -}}

{{/* The admin key Secret's volume and mount (api.access.adminKeySecret), or nothing. */}}
{{- define "alm.adminKeyVolume" -}}
{{- with .Values.api.access.adminKeySecret.name }}
- name: admin-key
  secret:
    secretName: {{ . }}
    defaultMode: 0440
    items:
      - key: {{ $.Values.api.access.adminKeySecret.key }}
        path: admin.key
{{- end }}
{{- end -}}

{{- define "alm.adminKeyMount" -}}
{{- if .Values.api.access.adminKeySecret.name }}
- name: admin-key
  mountPath: /etc/alm/api
  readOnly: true
{{- end }}
{{- end -}}
