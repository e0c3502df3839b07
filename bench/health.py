"""Time one full health pass: exact integer maths for every position vs float screen + exact check.

    .venv/bin/python -m bench.health [--positions 100000] [--repeat 5]

Synthetic books shaped like the devnet: an Aave V3 pool with WETH (18 decimals), WBTC (8) and USDC
(6, in a stablecoin eMode), evaluated with the v3.6 maths and with v3.0.x's, every user touching all
three assets (collateral in one or two, debt in the rest), and Morpho Blue positions over the
devnet's three markets. Health factors spread from 0.9 to 3, ``--underwater`` (default 3 %) of them
below 1. Every pass evaluates one block (12 s) after the last index update, so indexes and market
totals accrue. Prints a Markdown table and writes ``bench/results/health.json`` with the raw timings
and the machine they ran on.

The screen's one matrix product is skinny (users x 4*reserves @ 4*reserves x 9*categories): BLAS
threads buy nothing there and, on a busy two-core machine, cost several times its single-thread
time. ``make bench`` runs with ``OPENBLAS_NUM_THREADS=1``; the JSON records the setting.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import random
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from keeper.math.morpho import VIRTUAL_SHARES
from keeper.math.wad_ray import RAY, WAD
from keeper.protocols.aave_v3.math import account_data, reserves_at
from keeper.protocols.aave_v3.screen import AaveScreen
from keeper.protocols.aave_v3.state import (
    ZERO_ADDRESS,
    EModeCategory,
    PoolState,
    Reserve,
    ReserveConfig,
    UserReserve,
    UserState,
)
from keeper.protocols.aave_v3.v3_6 import math as math_v3_6
from keeper.protocols.morpho_blue.math import ORACLE_PRICE_SCALE, health_factor, market_at
from keeper.protocols.morpho_blue.screen import MorphoScreen
from keeper.protocols.morpho_blue.state import Market, MarketParams, MarketState, Position

T0 = 1_700_000_000
BLOCK_S = 12
RESULTS = Path(__file__).parent / "results" / "health.json"

# symbol: (decimals, price in 1e8 USD, liquidation threshold, eMode category), as the devnet deploys them
ASSETS = {
    "WETH": (18, 2_000 * 10**8, 8_250, 0),
    "WBTC": (8, 60_000 * 10**8, 7_500, 0),
    "USDC": (6, 10**8, 8_000, 1),
}
STABLE_EMODE = EModeCategory(
    1, 9_300, 9_500, 10_100, ZERO_ADDRESS, collateral_bitmap=0b100, borrowable_bitmap=0b100
)
"""v3.0 reads membership from the reserve's category bits, v3.6 from the bitmaps (USDC is id 2)."""
# (loan, collateral, lltv)
MORPHO_MARKETS = (
    ("USDC", "WETH", 860 * 10**15),
    ("USDC", "WBTC", 915 * 10**15),
    ("WETH", "WBTC", 770 * 10**15),
)


def target_health(rng: random.Random, underwater: float) -> float:
    return rng.uniform(0.9, 1.0) if rng.random() < underwater else rng.uniform(1.0, 3.0)


def address(i: int) -> str:
    return f"0x{i:040x}"


def aave_pool() -> PoolState:
    reserves, prices = {}, {}
    for reserve_id, (decimals, price, threshold, category) in enumerate(ASSETS.values()):
        config = ReserveConfig(
            threshold - 500,
            threshold,
            10_500,
            decimals,
            True,
            False,
            True,
            False,
            False,
            1_000,
            1_000,
            category,
        )
        reserves[reserve_id] = Reserve(
            address(0xA000 + reserve_id),
            reserve_id,
            config,
            liquidity_index=RAY * 1_021 // 1_000,
            current_liquidity_rate=RAY * 2 // 100,
            variable_borrow_index=RAY * 1_047 // 1_000,
            current_variable_borrow_rate=RAY * 45 // 1_000,
            last_update_timestamp=T0 - 60,
            a_token=address(0xB000 + reserve_id),
            stable_debt_token=address(0xC000 + reserve_id),
            variable_debt_token=address(0xD000 + reserve_id),
        )
        prices[reserves[reserve_id].asset] = price
    return PoolState(address(1), address(2), reserves, {1: STABLE_EMODE}, prices)


def aave_users(pool: PoolState, count: int, rng: random.Random, underwater: float) -> list[UserState]:
    users = []
    for n in range(count):
        ids = rng.sample(range(len(pool.reserves)), 3)
        split = rng.choice((1, 2))
        collateral_ids, debt_ids = ids[:split], ids[split:]
        category = 1 if rng.random() < 0.1 else 0
        legs: dict[int, UserReserve] = {}
        configuration, borrow_power = 0, 0.0
        for reserve_id in collateral_ids:
            reserve = pool.reserves[reserve_id]
            usd = 10 ** rng.uniform(2, 6)
            threshold = (
                STABLE_EMODE.liquidation_threshold
                if category and reserve.config.emode_category == category
                else reserve.config.liquidation_threshold
            )
            borrow_power += usd * threshold / 10_000
            tokens = usd * 10**8 / pool.prices[reserve.asset] * 10**reserve.config.decimals
            legs[reserve_id] = UserReserve(scaled_a_token=int(tokens * RAY / reserve.liquidity_index))
            configuration |= 2 << (2 * reserve_id)
        debt_usd = borrow_power / target_health(rng, underwater)
        for share, reserve_id in zip(_split(rng, len(debt_ids)), debt_ids, strict=True):
            reserve = pool.reserves[reserve_id]
            tokens = debt_usd * share * 10**8 / pool.prices[reserve.asset] * 10**reserve.config.decimals
            legs[reserve_id] = UserReserve(
                scaled_variable_debt=int(tokens * RAY / reserve.variable_borrow_index)
            )
            configuration |= 1 << (2 * reserve_id)
        users.append(UserState(address(0x10_0000 + n), configuration, category, legs))
    return users


def _split(rng: random.Random, parts: int) -> list[float]:
    first = rng.uniform(0.2, 0.8) if parts == 2 else 1.0
    return [first, 1.0 - first][:parts]


def morpho_book(
    count: int, rng: random.Random, underwater: float
) -> tuple[dict[str, MarketState], dict[tuple[str, str], Position]]:
    markets: dict[str, MarketState] = {}
    for i, (loan, collateral, lltv) in enumerate(MORPHO_MARKETS):
        loan_decimals, loan_price, _, _ = ASSETS[loan]
        collateral_decimals, collateral_price, _, _ = ASSETS[collateral]
        price = (
            collateral_price
            * ORACLE_PRICE_SCALE
            * 10**loan_decimals
            // (loan_price * 10**collateral_decimals)
        )
        borrowed = 50_000_000 * 10**8 // loan_price * 10**loan_decimals
        market = Market(
            borrowed * 5 // 4,
            borrowed * 5 // 4 * VIRTUAL_SHARES,
            borrowed,
            borrowed * 98 // 100 * VIRTUAL_SHARES,
            T0 - 60,
            0,
        )
        params = MarketParams(f"0x{i + 1:064x}", loan, collateral, address(3), address(4), lltv)
        markets[params.id] = MarketState(params, market, price, WAD * 5 // 100 // (365 * 86_400))
    positions: dict[tuple[str, str], Position] = {}
    ids = list(markets)
    for n in range(count):
        state = markets[rng.choice(ids)]
        decimals = ASSETS[state.params.collateral_token][0]
        collateral_assets = int(10 ** rng.uniform(-2, 2) * 10**decimals)
        max_borrow = collateral_assets * state.price // ORACLE_PRICE_SCALE * state.params.lltv // WAD
        market = state.market
        shares = int(
            max_borrow
            / target_health(rng, underwater)
            * market.total_borrow_shares
            / market.total_borrow_assets
        )
        positions[(state.params.id, address(0x20_0000 + n))] = Position(0, shares, collateral_assets)
    return markets, positions


def timed(fn: Callable[[], Any], repeat: int) -> tuple[list[float], Any]:
    """Milliseconds per call, after a garbage collection each time; returns the last result too."""
    times, result = [], None
    for _ in range(repeat):
        gc.collect()
        start = time.perf_counter()
        result = fn()
        times.append((time.perf_counter() - start) * 1_000)
    return times, result


def summary(times: list[float]) -> dict[str, Any]:
    return {
        "median_ms": float(np.median(times)),
        "p95_ms": float(np.percentile(times, 95)),
        "runs_ms": [round(t, 3) for t in times],
    }


def bench_aave(
    count: int, repeat: int, rng: random.Random, underwater: float, v3_6: bool = False
) -> dict[str, Any]:
    """The same book under v3.0.x's maths or v3.6's (`keeper.protocols.aave_v3.v3_6.math`)."""
    pool = aave_pool()
    users = aave_users(pool, count, rng, underwater)
    by_name = {u.user: u for u in users}
    at_s = T0 + BLOCK_S

    def exact(selected: list[UserState]) -> list[str]:
        if v3_6:
            at = math_v3_6.reserves_at(pool, at_s)
            return [u.user for u in selected if math_v3_6.account_data(pool, at, u).health_factor < WAD]
        at = reserves_at(pool, at_s)
        return [u.user for u in selected if account_data(pool, at, u, at_s).health_factor < WAD]

    screen = AaveScreen()
    build, _ = timed(lambda: screen.set_users(users), repeat)
    touched = users[: max(1, count // 100)]
    update, _ = timed(lambda: screen.update_users(touched), repeat)
    exact_times, liquidatable = timed(lambda: exact(users), repeat)
    screen_only, candidates = timed(lambda: screen.candidates(pool, at_s, v3_6=v3_6), repeat)
    screened, confirmed = timed(
        lambda: exact([by_name[u] for u in screen.candidates(pool, at_s, v3_6=v3_6)]), repeat
    )
    _check(liquidatable, candidates, confirmed)
    return _result(count, build, update, exact_times, screen_only, screened, liquidatable, candidates)


def bench_morpho(count: int, repeat: int, rng: random.Random, underwater: float) -> dict[str, Any]:
    markets, positions = morpho_book(count, rng, underwater)
    at_s = T0 + BLOCK_S

    def exact(keys: list[tuple[str, str]]) -> list[tuple[str, str]]:
        accrued = {market_id: market_at(state, at_s) for market_id, state in markets.items()}
        out = []
        for key in keys:
            state = markets[key[0]]
            if health_factor(positions[key], accrued[key[0]], state.price, state.params.lltv) < WAD:
                out.append(key)
        return out

    screen = MorphoScreen()
    build, _ = timed(lambda: screen.set_positions(positions), repeat)
    touched = dict(list(positions.items())[: max(1, count // 100)])
    update, _ = timed(lambda: screen.update_positions(touched), repeat)
    every = list(positions)
    exact_times, liquidatable = timed(lambda: exact(every), repeat)
    screen_only, candidates = timed(lambda: screen.candidates(markets, at_s), repeat)
    screened, confirmed = timed(lambda: exact(screen.candidates(markets, at_s)), repeat)
    _check(liquidatable, candidates, confirmed)
    return _result(count, build, update, exact_times, screen_only, screened, liquidatable, candidates)


def _check(liquidatable: list[Any], candidates: list[Any], confirmed: list[Any]) -> None:
    missed = set(liquidatable) - set(candidates)
    if missed or set(confirmed) != set(liquidatable):
        raise SystemExit(f"screen missed {len(missed)} liquidatable positions")


def _result(
    count: int,
    build: list[float],
    update: list[float],
    exact: list[float],
    screen_only: list[float],
    screened: list[float],
    liquidatable: list[Any],
    candidates: list[Any],
) -> dict[str, Any]:
    return {
        "positions": count,
        "liquidatable": len(liquidatable),
        "candidates": len(candidates),
        "exact_pass": summary(exact),
        "screen_only": summary(screen_only),
        "screen_pass": summary(screened),
        "array_build": summary(build),
        "update_1pct": summary(update),
    }


def machine() -> dict[str, Any]:
    """Same keys as ``bench.sync``, plus numpy's version."""
    cpuinfo = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    models = [line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name")]
    commit = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    )
    return {
        "cpu": models[0] if models else platform.processor(),
        "cores": sum(line.startswith("processor") for line in cpuinfo) or os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "openblas_num_threads": os.environ.get("OPENBLAS_NUM_THREADS", "default"),
        "commit": commit.stdout.strip(),
    }


def table(results: dict[str, dict[str, Any]]) -> str:
    def ms(entry: dict[str, Any]) -> str:
        return f"{entry['median_ms']:.1f} / {entry['p95_ms']:.1f}"

    rows = [
        "| protocol | positions | exact pass ms (median / p95) | screen + exact check ms | screen only ms "
        "| speed-up | candidates | liquidatable | array build ms | update 1 % ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, r in results.items():
        speedup = r["exact_pass"]["median_ms"] / r["screen_pass"]["median_ms"]
        rows.append(
            f"| {name} | {r['positions']:,} | {ms(r['exact_pass'])} | {ms(r['screen_pass'])} "
            f"| {ms(r['screen_only'])} | {speedup:.0f}x | {r['candidates']:,} | {r['liquidatable']:,} "
            f"| {ms(r['array_build'])} | {ms(r['update_1pct'])} |"
        )
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.health", description=__doc__.split("\n")[0])
    parser.add_argument("--positions", type=int, default=100_000, help="positions per protocol")
    parser.add_argument("--repeat", type=int, default=5, help="timed runs of each measurement")
    parser.add_argument("--underwater", type=float, default=0.03, help="share of positions below HF 1")
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args(argv)
    results = {
        "aave_v3_6": bench_aave(
            args.positions, args.repeat, random.Random(args.seed), args.underwater, v3_6=True
        ),
        "aave_v3_0": bench_aave(args.positions, args.repeat, random.Random(args.seed), args.underwater),
        "morpho_blue": bench_morpho(
            args.positions, args.repeat, random.Random(args.seed + 1), args.underwater
        ),
    }
    print(table(results))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": machine(),
        "date": time.strftime("%Y-%m-%d"),
        "positions": args.positions,
        "repeat": args.repeat,
        "underwater": args.underwater,
        "results": results,
    }
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwritten to {RESULTS}")


if __name__ == "__main__":
    main()
