"""Prometheus metrics the keeper exports, created in one place so names and labels stay consistent.

A `Metrics` object owns its collectors. The daemon builds one on the default registry (what the
HTTP exporter serves); tests build one per test on a fresh `CollectorRegistry`, because registering
the same metric name twice on one registry is an error.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram

RPC_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
"""From a local node (ms) to a provider timing out (tens of seconds)."""
STAGE_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0, 60.0)
"""Per-block stages take milliseconds; inclusion takes one or more block times."""
STAGES = ("received_to_screened", "screened_to_simulated", "simulated_to_sent", "sent_to_included")
HEALTH_THRESHOLDS = ("1.0", "1.05", "1.1")
GUARD_CAPS = ("gas_per_hour", "gas_per_day", "loss_per_hour", "loss_per_day", "reverts")
"""The spend guard's caps (`keeper.state.guardstate.Cap`; a unit test keeps the two equal)."""
GUARD_WINDOWS = ("hour", "day")
OPPORTUNITY_OUTCOMES = ("seen", "attempted", "won", "lost_to_competitor", "reverted", "skipped")


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

        self._keeper_metrics()
        self._guard_metrics()

    def _keeper_metrics(self) -> None:
        r = self.registry
        self.head_block = Gauge(
            "keeper_head_block", "Number of the last block the keeper processed.", registry=r
        )
        self.head_timestamp = Gauge(
            "keeper_head_timestamp_seconds",
            "Timestamp of the last processed block (head age = now - this).",
            registry=r,
        )
        self.blocks_behind = Gauge(
            "keeper_blocks_behind", "Chain head minus the last processed block.", registry=r
        )
        self.ready = Gauge(
            "keeper_ready", "1 when synced within the readiness margin and RPC reachable.", registry=r
        )
        self.stage_latency = Histogram(
            "keeper_stage_latency_seconds",
            "Latency of each stage: block received -> screened -> simulated -> sent -> included.",
            ["stage"],
            buckets=STAGE_BUCKETS_S,
            registry=r,
        )
        self.positions = Gauge(
            "keeper_positions_tracked", "Positions with debt, by protocol.", ["protocol"], registry=r
        )
        self.positions_below = Gauge(
            "keeper_positions_below_health",
            "Positions whose health factor is below the threshold, by protocol.",
            ["protocol", "threshold"],
            registry=r,
        )
        self.opportunities = Counter(
            "keeper_opportunities",
            "Opportunities by outcome: seen, attempted, won, lost_to_competitor, reverted, skipped.",
            ["protocol", "outcome"],
            registry=r,
        )
        self.skipped = Counter(
            "keeper_opportunities_skipped",
            "Opportunities not sent, by reason.",
            ["protocol", "reason"],
            registry=r,
        )
        self.dry_runs = Counter(
            "keeper_dry_run_liquidations",
            "Liquidations simulated and reported in dry-run mode.",
            ["protocol"],
            registry=r,
        )
        self.gas_spent = Counter(
            "keeper_gas_spent_wei", "Gas paid by the keeper's transactions, in wei.", registry=r
        )
        self.profit = Counter(
            "keeper_profit_expected_wei",
            "Expected net profit of the keeper's mined liquidations, in wei of the native token.",
            registry=r,
        )
        self.in_flight = Gauge("keeper_transactions_in_flight", "Sent, not yet mined or dropped.", registry=r)
        self.wallet = Gauge(
            "keeper_wallet_balance",
            "The keeper's balances, in token units (native: wei).",
            ["token"],
            registry=r,
        )
        self.feed_updates = Counter(
            "keeper_feed_updates", "Price feed updates seen, by asset.", ["protocol", "asset"], registry=r
        )
        self.prices_rejected = Counter(
            "keeper_prices_rejected",
            "Oracle prices refused (reverted, zero, negative).",
            ["protocol", "asset"],
            registry=r,
        )

    def zero(
        self, protocols: Mapping[str, Iterable[str]], feed_tokens: Iterable[str], feeds_label: str
    ) -> None:
        """Create every counter series whose labels are known at start (``protocols``: name -> its price
        keys) at 0. A series that first appears at 1 has no increase to Prometheus (``increase()``
        needs two samples), so the first revert would never fire KeeperReverts, and the dashboard's
        panels would read "no data" for a keeper that simply has not had a revert yet."""
        for name, price_keys in protocols.items():
            for outcome in OPPORTUNITY_OUTCOMES:
                self.opportunities.labels(name, outcome)
            self.dry_runs.labels(name)
            for key in price_keys:
                self.feed_updates.labels(name, key)
                self.prices_rejected.labels(name, key)
        for token in feed_tokens:
            self.prices_rejected.labels(feeds_label, token)

    def _guard_metrics(self) -> None:
        r = self.registry
        self.guard_tripped = Gauge(
            "keeper_spend_guard_tripped",
            "1 on the spend guard cap that stopped the keeper (gas_per_hour, gas_per_day, loss_per_hour, "
            "loss_per_day, reverts), 0 on the others.",
            ["cap"],
            registry=r,
        )
        self.guard_gas = Gauge(
            "keeper_spend_guard_gas_paid_wei",
            "Gas paid by settled keeper transactions in the rolling window (hour, day), in wei.",
            ["window"],
            registry=r,
        )
        self.guard_loss = Gauge(
            "keeper_spend_guard_realized_loss_wei",
            "Realized loss of settled keeper transactions in the rolling window (hour, day), in wei.",
            ["window"],
            registry=r,
        )
        self.guard_reverts = Gauge(
            "keeper_spend_guard_reverted_transactions",
            "Reverted keeper transactions within guard.revert_window_s.",
            registry=r,
        )
        for cap in GUARD_CAPS:  # every series from the first scrape (a dry run has no guard: all 0)
            self.guard_tripped.labels(cap)
        for window in GUARD_WINDOWS:
            self.guard_gas.labels(window)
            self.guard_loss.labels(window)

    def observe_rpc(self, endpoint: str, method: str, latency_s: float, error_kind: str | None) -> None:
        """Record one request; `error_kind` is None on success."""
        self.rpc_requests.labels(endpoint, method).inc()
        self.rpc_latency.labels(endpoint, method).observe(latency_s)
        if error_kind is not None:
            self.rpc_errors.labels(endpoint, method, error_kind).inc()
