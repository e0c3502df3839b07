"""`keeper run --fork`: what the keeper would do on the configured chain right now, harmlessly.

An Anvil fork of the configured RPC at its head, on a free local port; the keeper runs live against
it with the configured signer and executor as they are on chain, ``chain.rpc_urls`` replaced by the
fork's http and ws URLs, a fresh store in a temporary directory (never the operator's: it holds the
raw signed transactions, and the directory is deleted at the end) and no status server (a
Prometheus scraping the configured port must not see the fork as the real keeper). Nothing leaves
the local fork. It stops on SIGINT/SIGTERM (settling what is in flight, as `keeper run` does) or
after ``--fork-blocks`` blocks, then reports every liquidation it made (`keeper.fork.report`) and
stops the fork.
"""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import structlog

from keeper.chain.abi import contract
from keeper.chain.pool import http_urls
from keeper.config import Config, parse_config
from keeper.daemon import KEEPER_OPTIONS, Daemon, Mode
from keeper.devnet.rpc import Rpc
from keeper.devnet.toolchain import find_anvil, toolchain
from keeper.errors import KeeperError, UsageError
from keeper.execution.signer import Signer
from keeper.obs.progress import Report
from keeper.state.store import Store

from . import report as fork_report
from .anvil import Fork, running_fork

log = structlog.get_logger(__name__)

BENEFICIARY = contract("keeper/LiquidationExecutor").fn("beneficiary")


@dataclasses.dataclass(frozen=True)
class ForkOptions:
    blocks: int | None = None
    """Stop after this many blocks processed; None: at SIGINT/SIGTERM."""
    block_time_s: float = 1.0


def forked_config(config: Config, fork: Fork, store_path: Path) -> Config:
    """``config`` pointed at the fork: its URLs, a fresh store, no status server; live."""
    data = config.model_dump(mode="json", exclude_none=True)
    data["chain"]["rpc_urls"] = [fork.rpc_url, fork.ws_url]
    data["store"] = {"path": str(store_path)}
    data["metrics"] = {**data["metrics"], "listen": ""}
    data["execution"]["mode"] = "live"
    return parse_config(data, "--fork config")


def run_fork(
    config: Config, options: ForkOptions, progress: Report, environ: Mapping[str, str]
) -> dict[str, Any]:
    """Fork, run the keeper live on the fork until stopped, and return the report (fork stopped)."""
    signer = Signer.from_config(config.signer, config.chain.chain_id, environ)  # a bad key is said first
    upstream = http_urls(config.chain.rpc_urls)[0]
    anvil = find_anvil(toolchain())
    with tempfile.TemporaryDirectory(prefix="keeper-fork-") as scratch:
        workdir = Path(scratch)
        with running_fork(anvil, upstream, options.block_time_s, workdir / "anvil.log") as fork:
            if fork.chain_id != config.chain.chain_id:
                raise UsageError(
                    f"--fork: chain.rpc_urls serves chain id {fork.chain_id}, the config says "
                    f"chain.chain_id = {config.chain.chain_id}"
                )
            log.info(
                "fork_started",
                rpc_url=fork.rpc_url,
                ws_url=fork.ws_url,
                pid=fork.pid,
                block=fork.block,
                chain_id=fork.chain_id,
                upstream_host=urlsplit(upstream).hostname,  # never the URL: it may carry an API key
            )
            forked = forked_config(config, fork, workdir / "store.sqlite")
            keeper_options = dataclasses.replace(KEEPER_OPTIONS, stop_after_blocks=options.blocks)
            daemon = Daemon(forked, Mode.LIVE, progress, environ, keeper_options)
            error: KeeperError | None = None
            try:
                asyncio.run(daemon.serve())
            except KeeperError as exc:  # still say what was done before it stopped
                error = exc
            result = _report(daemon, fork, signer.address)
            _log_totals(result)
            if error is not None:
                raise error
            return result


def _report(daemon: Daemon, fork: Fork, keeper_address: str) -> dict[str, Any]:
    config = daemon.config
    if not config.store.path.is_file():
        txs = []
    else:
        with Store.open(config.store.path) as store:
            txs = store.transactions()
    rpc = Rpc(fork.rpc_url, timeout_s=30)
    receipts = dict(
        zip(
            (t.tx_hash for t in txs),
            rpc.batch([("eth_getTransactionReceipt", [t.tx_hash]) for t in txs]) if txs else [],
            strict=True,
        )
    )
    holders = [keeper_address]
    executor = config.execution.executor
    if config.execution.flash and executor is not None:
        holders.append(BENEFICIARY.value(rpc.eth_call(executor, BENEFICIARY.call())))
    native = config.execution.native_asset or ""
    books = daemon.engine.prices() if daemon.engine is not None else []
    landed = {h: r for h, r in receipts.items() if r is not None}
    margin_bps = config.execution.gas_limit_margin_bps
    found = fork_report.rows(txs, landed, holders, books, native, margin_bps)
    head = daemon.liveness.head
    chain = {
        "chain_id": fork.chain_id,
        "fork_block": fork.block,
        "last_block": head,
        "blocks_processed": 0 if head is None else head - fork.block,
    }
    return fork_report.report_json(found, txs, landed, chain)


def _log_totals(result: dict[str, Any]) -> None:
    totals = result["totals"]
    log.info("fork_report", fork_block=result["fork_block"], last_block=result["last_block"], **totals)
