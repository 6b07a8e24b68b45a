"""The REST API at /api/ (built in `orbit.api.site`), plus /metrics and /healthz."""
