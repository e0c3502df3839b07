"""`keeper devnet inspect`: what the devnet holds, read back from the contracts themselves.

Borrowers are found from the protocols' Borrow events; their health is read with one Multicall3
``aggregate3`` per chunk (Aave: ``getUserAccountData``; Morpho: ``position`` + ``market`` + the
market oracle's ``price``, combined as Morpho's ``_isHealthy`` does).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak

from keeper.errors import DevnetError

from .abi import decode_result, encode_call
from .morpho import MARKET_PARAMS
from .rpc import Rpc

MULTICALL3 = "0xcA11bde05977b3631167028862bE2a173976CA11"
WAD = 10**18
CHUNK = 200
AAVE_BORROW = "0x" + keccak(text="Borrow(address,address,address,uint256,uint8,uint256,uint16)").hex()
MORPHO_BORROW = "0x" + keccak(text="Borrow(bytes32,address,address,address,uint256,uint256)").hex()
EMODE_CATEGORY_ADDED = (
    "0x" + keccak(text="EModeCategoryAdded(uint8,uint256,uint256,uint256,address,string)").hex()
)
RESERVE_DATA = ["uint256"] + ["uint128"] * 5 + ["uint40", "uint16"] + ["address"] * 4 + ["uint128"] * 3
"""`getReserveData`: v3.0's `ReserveData`, ABI-identical to v3.6's `ReserveDataLegacy` (id at 7)."""


@dataclass(frozen=True)
class Health:
    protocol: str
    market: str
    user: str
    health_factor_wad: int
    collateral: int
    debt: int


def multicall(rpc: Rpc, calls: list[tuple[str, bytes]], block: str = "latest") -> list[bytes]:
    """Multicall3.aggregate3 in chunks; every call must succeed."""
    results: list[bytes] = []
    for start in range(0, len(calls), CHUNK):
        chunk = [(to, False, data) for to, data in calls[start : start + CHUNK]]
        raw = rpc.eth_call(MULTICALL3, encode_call("aggregate3((address,bool,bytes)[])", chunk), block)
        (decoded,) = decode_result(["(bool,bytes)[]"], raw)
        results += [bytes(data) for _, data in decoded]
    return results


def _logs(rpc: Rpc, address: str, topic: str) -> list[dict[str, Any]]:
    logs: list[dict[str, Any]] = rpc.call(
        "eth_getLogs", [{"address": address, "topics": [topic], "fromBlock": "0x0", "toBlock": "latest"}]
    )
    return logs


def aave_health(rpc: Rpc, pool: str) -> list[Health]:
    users = sorted(
        {to_checksum_address("0x" + log["topics"][2][-40:]) for log in _logs(rpc, pool, AAVE_BORROW)}
    )
    raws = multicall(rpc, [(pool, encode_call("getUserAccountData(address)", u)) for u in users])
    out = []
    for user, raw in zip(users, raws, strict=True):
        collateral, debt, _, _, _, hf = decode_result(["uint256"] * 6, raw)
        out.append(Health("aave", "pool", user, int(hf), int(collateral), int(debt)))
    return out


def morpho_health(rpc: Rpc, morpho: str) -> list[Health]:
    pairs = sorted(
        {
            (log["topics"][1], to_checksum_address("0x" + log["topics"][3][-40:]))
            for log in _logs(rpc, morpho, MORPHO_BORROW)
        }
    )
    ids = sorted({market for market, _ in pairs})
    params = {
        i: decode_result(["address", "address", "address", "address", "uint256"], raw)
        for i, raw in zip(
            ids,
            multicall(
                rpc, [(morpho, encode_call("idToMarketParams(bytes32)", bytes.fromhex(i[2:]))) for i in ids]
            ),
            strict=True,
        )
    }
    markets = {
        i: decode_result(["uint128"] * 6, raw)
        for i, raw in zip(
            ids,
            multicall(rpc, [(morpho, encode_call("market(bytes32)", bytes.fromhex(i[2:]))) for i in ids]),
            strict=True,
        )
    }
    prices = {
        i: decode_result(["uint256"], raw)[0]
        for i, raw in zip(
            ids, multicall(rpc, [(str(params[i][2]), encode_call("price()")) for i in ids]), strict=True
        )
    }
    positions = multicall(
        rpc, [(morpho, encode_call("position(bytes32,address)", bytes.fromhex(m[2:]), u)) for m, u in pairs]
    )
    out = []
    for (market, user), raw in zip(pairs, positions, strict=True):
        _, borrow_shares, collateral = (int(v) for v in decode_result(["uint256", "uint128", "uint128"], raw))
        _, _, total_borrow_assets, total_borrow_shares, _, _ = (int(v) for v in markets[market])
        lltv, price = int(params[market][4]), int(prices[market])
        borrowed = -(-borrow_shares * (total_borrow_assets + 1) // (total_borrow_shares + 10**6))
        max_borrow = collateral * price // 10**36 * lltv // WAD
        hf = 2**256 - 1 if borrowed == 0 else max_borrow * WAD // borrowed
        out.append(Health("morpho", market, user, hf, collateral, borrowed))
    return out


def summarize(healths: list[Health]) -> dict[str, Any]:
    buckets = {"<1.00": 0, "1.00-1.05": 0, "1.05-1.25": 0, ">=1.25": 0}
    for h in healths:
        if h.debt == 0:
            continue
        if h.health_factor_wad < WAD:
            buckets["<1.00"] += 1
        elif h.health_factor_wad < WAD * 105 // 100:
            buckets["1.00-1.05"] += 1
        elif h.health_factor_wad < WAD * 125 // 100:
            buckets["1.05-1.25"] += 1
        else:
            buckets[">=1.25"] += 1
    return {"borrowers": sum(buckets.values()), "health_buckets": buckets}


def morpho_market_lines(rpc: Rpc, morpho: str, irm_view: bool = True) -> list[str]:
    ids = sorted(
        {
            log["topics"][1]
            for log in _logs(rpc, morpho, "0x" + keccak(text=f"CreateMarket(bytes32,{MARKET_PARAMS})").hex())
        }
    )
    lines = []
    for i in ids:
        loan, coll, oracle, irm, lltv = decode_result(
            ["address"] * 4 + ["uint256"],
            rpc.eth_call(morpho, encode_call("idToMarketParams(bytes32)", bytes.fromhex(i[2:]))),
        )
        market = decode_result(
            ["uint128"] * 6, rpc.eth_call(morpho, encode_call("market(bytes32)", bytes.fromhex(i[2:])))
        )
        supply, _, borrow, _, _, fee = (int(v) for v in market)
        rate = decode_result(
            ["uint256"],
            rpc.eth_call(
                str(irm),
                encode_call(
                    f"borrowRateView({MARKET_PARAMS},(uint128,uint128,uint128,uint128,uint128,uint128))",
                    (loan, coll, oracle, irm, lltv),
                    tuple(market),
                ),
            ),
        )[0]
        loan_sym = decode_result(["string"], rpc.eth_call(str(loan), encode_call("symbol()")))[0]
        coll_sym = decode_result(["string"], rpc.eth_call(str(coll), encode_call("symbol()")))[0]
        utilization = borrow * 100 / supply if supply else 0.0
        apr = int(rate) * 365 * 86400 / WAD * 100
        lines.append(
            f"  {i[:10]}…  {coll_sym}/{loan_sym}  LLTV {int(lltv) / WAD:.3f}  "
            f"utilization {utilization:5.1f} %  borrow APR {apr:5.2f} %  fee {fee / WAD:.2f}"
        )
    return lines


def aave_version(rpc: Rpc, pool: str) -> str:
    """The devnet deploys v3.0.x or v3.6; only v3.6 has `getEModeCategoryLtvzeroBitmap`."""
    try:
        rpc.eth_call(pool, encode_call("getEModeCategoryLtvzeroBitmap(uint8)", 0))
    except DevnetError:
        return "3.0"
    return "3.6"


def _emode_categories(rpc: Rpc, provider: str, pool: str, data: str, reserve: str, version: str) -> str:
    """v3.0: the reserve's one category (config bits 168-175, via the data provider). v3.6: every
    category whose collateral bitmap holds the reserve's id (categories from their added events)."""
    if version == "3.0":
        (category,) = decode_result(
            ["uint256"], rpc.eth_call(data, encode_call("getReserveEModeCategory(address)", reserve))
        )
        return str(category)
    (configurator,) = decode_result(["address"], rpc.eth_call(provider, encode_call("getPoolConfigurator()")))
    reserve_id = int(
        decode_result(RESERVE_DATA, rpc.eth_call(pool, encode_call("getReserveData(address)", reserve)))[7]
    )
    ids = sorted({int(log["topics"][1], 16) for log in _logs(rpc, str(configurator), EMODE_CATEGORY_ADDED)})
    member = []
    for category in ids:
        (bitmap,) = decode_result(
            ["uint128"], rpc.eth_call(pool, encode_call("getEModeCategoryCollateralBitmap(uint8)", category))
        )
        if (int(bitmap) >> reserve_id) & 1:
            member.append(str(category))
    return ",".join(member) or "0"


def aave_reserve_lines(rpc: Rpc, provider: str) -> list[str]:
    (pool,) = decode_result(["address"], rpc.eth_call(provider, encode_call("getPool()")))
    version = aave_version(rpc, str(pool))
    (oracle,) = decode_result(["address"], rpc.eth_call(provider, encode_call("getPriceOracle()")))
    (data,) = decode_result(["address"], rpc.eth_call(provider, encode_call("getPoolDataProvider()")))
    (reserves,) = decode_result(["address[]"], rpc.eth_call(pool, encode_call("getReservesList()")))
    lines = []
    for reserve in reserves:
        (symbol,) = decode_result(["string"], rpc.eth_call(reserve, encode_call("symbol()")))
        config = decode_result(
            ["uint256"] * 5 + ["bool"] * 5,
            rpc.eth_call(data, encode_call("getReserveConfigurationData(address)", reserve)),
        )
        emode = _emode_categories(rpc, provider, str(pool), str(data), reserve, version)
        (price,) = decode_result(
            ["uint256"], rpc.eth_call(oracle, encode_call("getAssetPrice(address)", reserve))
        )
        decimals, ltv, lt, bonus, factor = (int(v) for v in config[:5])
        bonus_text = f"{(bonus - 10_000) / 100:4.2f} %" if bonus else "none  "  # not collateral: LB 0
        lines.append(
            f"  {symbol:<5} decimals {decimals:>2}  price ${price / 1e8:>10,.2f}  LTV {ltv / 100:5.2f} %  "
            f"LT {lt / 100:5.2f} %  bonus {bonus_text}  reserve factor "
            f"{factor / 100:4.1f} %  eMode {emode}"
        )
    return lines


def report(rpc: Rpc, provider: str, morpho: str) -> str:
    (pool,) = decode_result(["address"], rpc.eth_call(provider, encode_call("getPool()")))
    aave = aave_health(rpc, pool)
    blue = morpho_health(rpc, morpho)
    lines = [
        f"block {rpc.block_number()}",
        f"Aave V3 (v{aave_version(rpc, str(pool))}) reserves:",
        *aave_reserve_lines(rpc, provider),
        "Morpho Blue markets:",
        *morpho_market_lines(rpc, morpho),
    ]
    for name, healths in (("Aave V3", aave), ("Morpho Blue", blue)):
        summary = summarize(healths)
        buckets = "  ".join(f"HF {k}: {v}" for k, v in summary["health_buckets"].items())
        lines.append(f"{name} borrowers: {summary['borrowers']}   {buckets}")
        for h in sorted((h for h in healths if h.debt), key=lambda h: h.health_factor_wad)[:3]:
            lines.append(f"    lowest: {h.user}  HF {h.health_factor_wad / WAD:.4f}")
    return "\n".join(lines)
