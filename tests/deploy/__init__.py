"""The deployment files against the code: the Helm chart rendered by the helm that
deploy/helm/check builds (its values, environment, probes, rules and dashboard)."""
