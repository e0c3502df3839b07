"""`keeper devnet up`: Anvil + real Aave V3 + Morpho Blue + Uniswap V3 + feeds + Multicall3 + seeded
borrowers."""

from __future__ import annotations

import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address

from .aave import DEFAULT_AAVE_VERSION, AaveDeployment, deploy_aave
from .abi import decode_result, encode_args, encode_call
from .accounts import (
    COMPETITOR_INDEX,
    DEPLOYER_INDEX,
    ISSUER_INDEX,
    KEEPER_INDEX,
    SUPPLIER_INDEXES,
    dev_account,
    user_addresses,
)
from .anvil import CHAIN_ID, AnvilProcess, start_anvil, stop_anvil
from .cases import CASES, case_borrower_txs, case_liquidity_txs, cases_by_name, grace_period_txs, plan_cases
from .morpho import MorphoDeployment, deploy_morpho
from .rpc import Executor, Rpc, Tx
from .seed import (
    AaveBorrowerPlan,
    MorphoBorrowerPlan,
    aave_borrower_txs,
    aave_close_txs,
    closers,
    inventory_txs,
    liquidity_txs,
    morpho_borrower_txs,
    morpho_close_txs,
    plan_aave,
    plan_morpho,
)
from .spec import ASSETS, CASE_ASSETS, FEED_DECIMALS, AssetSpec
from .toolchain import (
    Artifact,
    Toolchain,
    aave_artifact,
    compiled_aave_v36,
    compiled_contracts,
    find_anvil,
    multicall3_creation_code,
)
from .uniswap import UniswapDeployment, check_pool_init_code_hash, deploy_uniswap

MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
USER_ETH_WEI = 10 * 10**18


@dataclass(frozen=True)
class UpOptions:
    port: int = 8545
    aave_borrowers: int = 200
    morpho_borrowers: int = 200
    seed: int = 1
    block_time_s: int | None = None
    config_out: Path | None = Path("config/devnet.toml")
    host: str = "127.0.0.1"
    """Anvil's bind address; 0.0.0.0 lets other containers reach it (the devnet itself uses 127.0.0.1)."""
    aave_version: str = DEFAULT_AAVE_VERSION
    """"3.0" (`@aave/core-v3` artifacts) or "3.6" (`@aave-dao/aave-v3-origin`, compiled here)."""


@dataclass
class Progress:
    """Stage timings on stderr: stdout carries only the JSON result."""

    started: float = field(default_factory=time.monotonic)

    def step(self, what: str) -> None:
        print(f"[devnet {time.monotonic() - self.started:6.2f}s] {what}", file=sys.stderr, flush=True)


def devnet_up(chain: Toolchain, options: UpOptions) -> tuple[AnvilProcess, dict[str, Any]]:
    """Start and populate a devnet; returns the running Anvil and the summary the CLI prints."""
    progress = Progress()
    artifacts = compiled_contracts(chain)  # before Anvil: a cold compile takes ~10 s
    anvil = find_anvil(chain)
    aave_artifact(chain, "MintableERC20")  # fail fast on a missing package, before starting anything
    if options.aave_version == "3.6":
        compiled_aave_v36(chain)  # a cold compile takes ~13 s
    else:
        aave_artifact(chain, "Pool")
    multicall_code = multicall3_creation_code(chain)
    check_pool_init_code_hash(chain)
    process = start_anvil(anvil, chain, options.port, options.host)
    progress.step(f"anvil up on port {options.port} (pid {process.pid})")
    try:
        rpc = Rpc(process.rpc_url)
        rpc.call("evm_setAutomine", [False])
        ex = Executor(rpc)
        summary = _deploy_and_seed(chain, rpc, ex, artifacts, multicall_code, options, progress)
        if options.block_time_s:
            rpc.call("evm_setIntervalMining", [options.block_time_s])
        else:
            rpc.call("evm_setAutomine", [True])
        summary |= {
            "rpc_url": process.rpc_url,
            "ws_url": process.ws_url,
            "chain_id": CHAIN_ID,
            "anvil_pid": process.pid,
            "block": rpc.block_number(),
            "ready_s": round(time.monotonic() - progress.started, 2),
        }
        progress.step("ready")
    except BaseException:
        stop_anvil(chain, options.port)
        raise
    return process, summary


def _deploy_and_seed(
    chain: Toolchain,
    rpc: Rpc,
    ex: Executor,
    artifacts: dict[str, Artifact],
    multicall_code: bytes,
    options: UpOptions,
    progress: Progress,
) -> dict[str, Any]:
    deployer = dev_account(DEPLOYER_INDEX).address
    issuer = dev_account(ISSUER_INDEX).address
    keeper = dev_account(KEEPER_INDEX).address
    competitor = dev_account(COMPETITOR_INDEX).address
    aave_supplier, morpho_supplier = (dev_account(i).address for i in SUPPLIER_INDEXES)

    with_cases = options.aave_version == "3.6"
    assets = ASSETS + CASE_ASSETS if with_cases else ASSETS
    tokens, feeds = _deploy_assets(chain, ex, artifacts, issuer, assets)
    aave = deploy_aave(ex, chain, deployer, tokens, feeds, options.aave_version)
    progress.step(f"aave v{aave.version} deployed")
    morpho = deploy_morpho(ex, artifacts, deployer, tokens, feeds)
    progress.step(f"morpho blue deployed ({len(morpho.markets)} markets)")
    uniswap = deploy_uniswap(ex, chain, tokens)
    progress.step(f"uniswap v3 deployed ({len(uniswap.pools)} pools)")
    _place_multicall3(rpc, ex, deployer, multicall_code)

    rng = random.Random(options.seed)
    aave_users = user_addresses("aave", options.aave_borrowers, options.seed)
    morpho_users = user_addresses("morpho", options.morpho_borrowers, options.seed)
    aave_plans = plan_aave(aave_users, rng)
    morpho_plans = plan_morpho(morpho_users, morpho.markets, rng)
    rpc.batch([("anvil_setBalance", [u, hex(USER_ETH_WEI)]) for u in aave_users + morpho_users])
    ex.execute(
        liquidity_txs(
            aave_plans,
            morpho_plans,
            aave_supplier,
            morpho_supplier,
            aave.pool,
            morpho.address,
            morpho.markets,
            tokens,
        )
        + inventory_txs(issuer, [keeper, competitor], tokens, [aave.pool, morpho.address], assets)
    )
    ex.execute([tx for p in aave_plans for tx in aave_borrower_txs(p, aave.pool, tokens)])
    progress.step(f"{len(aave_plans)} aave borrowers seeded")
    ex.execute([tx for p in morpho_plans for tx in morpho_borrower_txs(p, morpho.address, morpho.markets)])
    progress.step(f"{len(morpho_plans)} morpho borrowers seeded")
    closed = _close_some(rpc, ex, aave_plans, morpho_plans, aave.pool, morpho, tokens)
    cases = _seed_cases(rpc, ex, aave, tokens, deployer, aave_supplier, options.seed) if with_cases else {}
    if cases:
        progress.step(f"{sum(map(len, cases.values()))} aave case borrowers seeded")
    summary = _summary(aave, morpho, tokens, feeds, keeper, competitor, options)
    summary["aave"]["cases"] = cases
    return summary | {"uniswap_v3": _uniswap_summary(uniswap), "closed_borrowers": closed}


def _seed_cases(
    rpc: Rpc, ex: Executor, aave: AaveDeployment, tokens: dict[str, str], admin: str, supplier: str, seed: int
) -> dict[str, list[str]]:
    """The v3.6 case borrowers (`keeper.devnet.cases`), after the random ones; then GRACE's
    liquidation grace period starts, as late as possible so its 4 h hold through the tests."""
    plans = plan_cases(user_addresses("aave-case", len(CASES), seed))
    rpc.batch([("anvil_setBalance", [p.user, hex(USER_ETH_WEI)]) for p in plans])
    ex.execute(
        case_liquidity_txs(plans, supplier, aave.pool, tokens)
        + [tx for p in plans for tx in case_borrower_txs(p, aave.pool, tokens)]
    )
    ex.execute(grace_period_txs(admin, aave.pool_configurator, tokens))
    return cases_by_name(plans)


def _close_some(
    rpc: Rpc,
    ex: Executor,
    aave_plans: list[AaveBorrowerPlan],
    morpho_plans: list[MorphoBorrowerPlan],
    pool: str,
    morpho: MorphoDeployment,
    tokens: dict[str, str],
) -> dict[str, list[str]]:
    """Every CLOSER_EVERY-th borrower repays everything and withdraws: history a backfill must find."""
    aave_closing = [p for p in aave_plans if p.user in set(closers(aave_plans))]
    morpho_closing = [p for p in morpho_plans if p.user in set(closers(morpho_plans))]
    shares = [
        int(decode_result(["uint256", "uint128", "uint128"], raw)[1])
        for raw in (
            rpc.eth_call(
                morpho.address,
                encode_call(
                    "position(bytes32,address)", bytes.fromhex(morpho.markets[p.market].id[2:]), p.user
                ),
            )
            for p in morpho_closing
        )
    ]
    ex.execute(
        [tx for p in aave_closing for tx in aave_close_txs(p, pool, tokens)]
        + [
            tx
            for p, s in zip(morpho_closing, shares, strict=True)
            for tx in morpho_close_txs(p, morpho.address, morpho.markets, s)
        ]
    )
    return {"aave": [p.user for p in aave_closing], "morpho": [p.user for p in morpho_closing]}


def _deploy_assets(
    chain: Toolchain, ex: Executor, artifacts: dict[str, Artifact], issuer: str, assets: tuple[AssetSpec, ...]
) -> tuple[dict[str, str], dict[str, str]]:
    token_code = bytes.fromhex(aave_artifact(chain, "MintableERC20").bytecode[2:])
    feed_code = bytes.fromhex(artifacts["SettableFeed"].bytecode)
    txs, names = [], []
    for spec in assets:
        txs.append(
            Tx(
                issuer,
                None,
                token_code
                + encode_args("(string,string,uint8)", f"Devnet {spec.symbol}", spec.symbol, spec.decimals),
                f"token {spec.symbol}",
                gas=5_000_000,
            )
        )
        txs.append(
            Tx(
                issuer,
                None,
                feed_code
                + encode_args(
                    "(uint8,string,int256)", FEED_DECIMALS, f"{spec.symbol} / USD", spec.price_usd_8
                ),
                f"feed {spec.symbol}",
                gas=5_000_000,
            )
        )
        names.append(spec.symbol)
    receipts = ex.execute(txs)
    tokens = {s: receipts[2 * i]["contractAddress"] for i, s in enumerate(names)}
    feeds = {s: receipts[2 * i + 1]["contractAddress"] for i, s in enumerate(names)}
    return _checksummed(tokens), _checksummed(feeds)


def _checksummed(addresses: dict[str, str]) -> dict[str, str]:
    return {k: to_checksum_address(v) for k, v in addresses.items()}


def _place_multicall3(rpc: Rpc, ex: Executor, deployer: str, creation_code: bytes) -> None:
    """Deploy Multicall3 from viem's creation code, then put its runtime at the canonical address."""
    address = ex.deploy(deployer, creation_code, "Multicall3")
    runtime = rpc.call("eth_getCode", [address, "latest"])
    rpc.call("anvil_setCode", [MULTICALL3, runtime])


def _summary(
    aave: AaveDeployment,
    morpho: MorphoDeployment,
    tokens: dict[str, str],
    feeds: dict[str, str],
    keeper: str,
    competitor: str,
    options: UpOptions,
) -> dict[str, Any]:
    return {
        "keeper_address": keeper,
        "competitor_address": competitor,
        "multicall3": MULTICALL3,
        "aave": {
            "version": aave.version,
            "pool_addresses_provider": aave.pool_addresses_provider,
            "pool": aave.pool,
            "oracle": aave.oracle,
            "data_provider": aave.data_provider,
            "reserves": tokens,
            "borrowers": options.aave_borrowers,
        },
        "morpho": {
            "address": morpho.address,
            "irm": morpho.irm,
            "markets": [m.id for m in morpho.markets],
            "market_params": [
                {
                    "id": m.id,
                    "loan": m.loan,
                    "collateral": m.collateral,
                    "loan_token": m.loan_token,
                    "collateral_token": m.collateral_token,
                    "oracle": m.oracle,
                    "irm": m.irm,
                    "lltv": str(m.lltv),
                }
                for m in morpho.markets
            ],
            "borrowers": options.morpho_borrowers,
        },
        "feeds": feeds,
        "seed": options.seed,
    }


def _uniswap_summary(uniswap: UniswapDeployment) -> dict[str, Any]:
    return {
        "factory": uniswap.factory,
        "swap_router": uniswap.swap_router,
        "quoter": uniswap.quoter,
        "position_manager": uniswap.position_manager,
        "fee_tiers": uniswap.fee_tiers,
        "pools": [
            {"token0": p.token0, "token1": p.token1, "fee": p.fee, "address": p.address}
            for p in uniswap.pools
        ],
    }
