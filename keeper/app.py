"""Wiring helpers the daemon (and the tests and benchmarks) build their parts with.

Pure functions of the config and what the status server reads; the lifecycle that uses them
(start-up, the one TaskGroup, shutdown, signals) is `keeper.daemon`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from keeper.chain.blocks import Heads, PollingHeads, WebSocketHeads
from keeper.chain.rpc import Rpc
from keeper.config import Config, ExecutionConfig, MorphoBlueConfig
from keeper.execution.flash import FlashSetup
from keeper.execution.gas import FeePolicy
from keeper.positions import json_object, report_of
from keeper.protocols.base import LogFilter
from keeper.state.sync import PositionSync, Tracked


def combined_filter(protocols: Sequence[Tracked]) -> LogFilter:
    """One eth_getLogs per block for every protocol: the union of their addresses and topics."""
    filters = [t.adapter.log_filter() for t in protocols]
    addresses = tuple(dict.fromkeys(a for f in filters for a in f.addresses))
    topics = tuple(dict.fromkeys(t for f in filters for t in f.topics))
    return LogFilter(addresses, topics)


def heads_for(config: Config, rpc: Rpc, poll_interval_s: float) -> Heads:
    """WebSocket newHeads when the config has a ws:// URL (polling covers its outages), else polling."""
    ws_urls = [u for u in config.chain.rpc_urls if u.startswith(("ws://", "wss://"))]
    stall_warn_s = config.chain.head_stall_warn_s
    if ws_urls:
        return WebSocketHeads(ws_urls[0], rpc, poll_interval_s=poll_interval_s, stall_warn_s=stall_warn_s)
    return PollingHeads(rpc, poll_interval_s, stall_warn_s)


def flash_setup(config: Config) -> FlashSetup | None:
    """The flash strategy's parts, when it is on: the executor, the first venue, a Morpho to borrow
    from (the first configured; its flash loans are free)."""
    execution = config.execution
    if not execution.flash or execution.executor is None or not config.venues:
        return None
    venue = config.venues[0]
    morphos = [p for p in config.protocols if isinstance(p, MorphoBlueConfig)]
    return FlashSetup(
        executor=execution.executor,
        router=venue.swap_router,
        quoter=venue.quoter,
        fee_tiers=venue.fee_tiers,
        morpho=morphos[0].address if morphos else None,
        max_slippage_bps=execution.max_slippage_bps,
        factory=venue.factory,
        simulate=execution.simulate_flash,
    )


def fee_policy(execution: ExecutionConfig) -> FeePolicy:
    return FeePolicy(
        strategy=execution.fee_strategy,
        max_fee_per_gas_wei=execution.max_fee_per_gas_wei,
        base_fee_multiplier_bps=execution.base_fee_multiplier_bps,
        priority_fee_wei=execution.priority_fee_wei,
        priority_percentile=execution.priority_percentile,
        profit_share_bps=execution.profit_share_bps,
        max_gas_cost_share_bps=execution.max_gas_cost_share_bps,
        min_profit_wei=execution.min_profit_wei,
        replace_after_blocks=execution.replace_after_blocks,
    )


@dataclass
class Liveness:
    """What /readyz needs: the last block applied (and when), and the chain head the heads saw."""

    max_blocks_behind: int
    max_head_age_s: float
    head: int | None = None
    head_wall_s: float = 0.0
    chain_head: int = 0

    def applied(self, number: int, best_head: int = 0) -> int:
        """Block ``number`` is done; returns how many blocks the keeper is behind the chain head."""
        self.head, self.head_wall_s = number, time.monotonic()
        self.chain_head = max(best_head, number)
        return self.chain_head - number

    def readiness(self) -> tuple[bool, dict[str, Any]]:
        if self.head is None:
            return False, {"reason": "syncing"}
        age_s = time.monotonic() - self.head_wall_s
        behind = max(0, self.chain_head - self.head)
        details = {"block": self.head, "blocks_behind": behind, "head_age_s": round(age_s, 1)}
        if behind > self.max_blocks_behind:
            return False, details | {"reason": "behind the chain head"}
        if age_s > self.max_head_age_s:
            return False, details | {"reason": "no new block processed recently (RPC or node down?)"}
        return True, details


def positions_json(sync: PositionSync) -> dict[str, Any]:
    """/positions: what `keeper positions --json` prints, at the block the keeper last applied."""
    if sync.head is None:
        return {"block": None, "positions": []}
    report = report_of(sync)
    return json_object(report, report.positions)
