"""Observability: Prometheus metrics (and, later, structlog setup and the status HTTP server)."""
