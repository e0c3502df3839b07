"""`keeper check-config`: everything `keeper run` would check at start, without running.

Parse and validate the config, reach the RPC, check the chain id, Multicall3 and contract code,
load the signer, check every ``[[price_feeds]]`` entry answers a price and every ``[[venues]]``
contract exists, and report the wallet
(native balance, each debt token's balance and allowance). Any failure is one line naming the key
and the problem (exit 2; every bad feed gets its line); success prints a short report.
"""

from __future__ import annotations

from collections.abc import Mapping

from keeper.chain.pool import RpcPool, http_urls
from keeper.chain.preflight import check_chain_id, require_code, require_multicall3
from keeper.config import Config
from keeper.errors import Retryable, UsageError
from keeper.execution.executor_contract import ExecutorBuild, check_executor
from keeper.execution.signer import Signer
from keeper.execution.wallet import wallet_report
from keeper.protocols.price_feeds import feed_problems
from keeper.protocols.registry import build_adapter
from keeper.state.sync import block_ref, tracked_protocols


async def check_config(
    config: Config, environ: Mapping[str, str], executor_build: ExecutorBuild | None = None
) -> list[str]:
    """The report's lines; ``executor_build`` (the compiled executor) is needed when
    ``execution.executor`` is set."""
    signer = Signer.from_config(config.signer, config.chain.chain_id, environ)
    lines = [f"signer        {signer.address}"]
    async with RpcPool(
        http_urls(config.chain.rpc_urls),
        max_attempts=1,
        timeout_s=config.chain.request_timeout_s,
        max_head_lag_blocks=config.chain.max_head_lag_blocks,
        multicall3=config.chain.multicall3,
        chain_id=config.chain.chain_id,
    ) as rpc:
        try:
            await check_chain_id(rpc, config.chain.chain_id)
            head = await block_ref(rpc)
        except Retryable as exc:
            raise UsageError(f"chain.rpc_urls: no endpoint answered ({exc})") from None
        lines.insert(0, f"chain         {config.chain.chain_id}, head block {head.number}")
        await require_multicall3(rpc, config.chain.multicall3)  # every read below goes through it
        lines.insert(1, f"multicall3    {config.chain.multicall3}")
        problems = await feed_problems(rpc, config.price_feeds, head)
        if problems:
            raise UsageError("\n".join(problems))
        await require_code(rpc, config)
        tracked = tracked_protocols(config.protocols, build_adapter)
        for protocol in tracked:
            await protocol.adapter.refresh(rpc, head, [])
            lines.append(f"protocol      {protocol.name} ({protocol.config.kind}): contracts found")
            version = getattr(protocol.adapter, "version", None)  # Aave's, detected by refresh()
            if version is not None:
                lines.append(f"version       {protocol.name}: {version}")
        executor = config.execution.executor
        if executor is not None:
            if executor_build is None:
                raise UsageError("execution.executor: the compiled LiquidationExecutor is needed to check it")
            await check_executor(rpc, executor, executor_build, signer.address)
            lines.append(f"executor      {executor}: LiquidationExecutor, owned by the signer")
        for venue in config.venues:  # their code was checked with the protocols'
            lines.append(f"venue         {venue.kind}: factory {venue.factory}, router and quoter found")
        for feed in config.price_feeds:
            lines.append(f"price feed    {feed.token}: {feed.feed} answers")
        wallet = await wallet_report(rpc, signer.address, tracked)
    lines.append(f"native        {int(wallet['native_wei']) / 1e18:.6f}")
    for label, token in sorted(wallet["tokens"].items()):
        allowance = "approved" if int(token["allowance"]) else "NOT APPROVED"
        lines.append(f"token         {label}: balance {token['balance']}, {allowance} for {token['spender']}")
    if config.execution.mode == "live" and config.execution.native_asset is None:
        raise UsageError("execution.native_asset: required to value profits in live mode")
    return lines
