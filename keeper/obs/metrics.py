"""Prometheus metrics the keeper exports, created in one place so names and labels stay consistent.

A `Metrics` object owns its collectors. The daemon builds one on the default registry (what the
HTTP exporter serves); tests build one per test on a fresh `CollectorRegistry`, because registering
the same metric name twice on one registry is an error.
"""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram

RPC_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""From a local node (ms) to a provider timing out (tens of seconds)."""


class Metrics:
    """Every collector the keeper records into; label values are bounded (endpoints, method names)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = REGISTRY if registry is None else registry
        self.rpc_requests = Counter(
            "keeper_rpc_requests",
            "JSON-RPC requests sent, by endpoint (scheme://host:port only) and method.",
            ["endpoint", "method"],
            registry=self.registry,
        )
        self.rpc_errors = Counter(
            "keeper_rpc_errors",
            "JSON-RPC requests that failed, by endpoint, method and kind (http_429, timeout, rpc_error...).",
            ["endpoint", "method", "kind"],
            registry=self.registry,
        )
        self.rpc_latency = Histogram(
            "keeper_rpc_latency_seconds",
            "Wall time of one JSON-RPC request (success or failure), by endpoint and method.",
            ["endpoint", "method"],
            buckets=RPC_LATENCY_BUCKETS_S,
            registry=self.registry,
        )

    def observe_rpc(self, endpoint: str, method: str, latency_s: float, error_kind: str | None) -> None:
        """Record one request; `error_kind` is None on success."""
        self.rpc_requests.labels(endpoint, method).inc()
        self.rpc_latency.labels(endpoint, method).observe(latency_s)
        if error_kind is not None:
            self.rpc_errors.labels(endpoint, method, error_kind).inc()
