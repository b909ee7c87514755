"""What every HTTP route shares: errors.py (domain errors, the JSON error middleware),
auth.py (the admin token, path slugs), net.py (the client address behind nginx),
metrics.py (HTTP metrics, /metrics), health.py (/healthz), openapi.py (/api/openapi.json)."""
