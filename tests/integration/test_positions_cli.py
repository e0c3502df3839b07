"""`keeper positions` as a user runs it: every borrower listed, every Aave number == getUserAccountData."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from keeper.chain.multicall import words
from keeper.devnet.abi import encode_call
from keeper.devnet.inspect import aave_health, morpho_health
from tests.conftest import Devnet, free_port, run_keeper
from tests.support.config import variant

pytestmark = pytest.mark.integration

WAD = 10**18


def positions_json(devnet: Devnet, *extra: str) -> dict[str, object]:
    proc = run_keeper("positions", "--config", str(devnet.config_path), "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    assert "blocks/s" in proc.stderr  # progress is shown while logs are scanned
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def test_json_lists_every_borrower_with_the_contracts_numbers(devnet: Devnet) -> None:
    report = positions_json(devnet)
    block = report["block"]
    assert isinstance(block, int)
    rows = report["positions"]
    assert isinstance(rows, list)
    pool = devnet.summary["aave"]["pool"]
    aave_rows = {r["user"]: r for r in rows if r["protocol"] == "aave_v3"}
    for user, row in aave_rows.items():
        raw = devnet.rpc.eth_call(pool, encode_call("getUserAccountData(address)", user), block)
        collateral, debt, _, _, _, health = words(raw)
        assert (row["collateral_base"], row["debt_base"], row["health_factor_wad"]) == (
            str(collateral),
            str(debt),
            str(health),
        ), user
        assert row["liquidatable"] == (health < WAD)
    assert devnet.rpc.block_number() == block  # nothing moved: the views below are at the same block
    assert set(aave_rows) == {h.user for h in aave_health(devnet.rpc, pool) if h.debt}
    morpho_rows = {(r["market"], r["user"]): r for r in rows if r["protocol"] == "morpho_blue"}
    expected = {
        (h.market, h.user): h
        for h in morpho_health(devnet.rpc, devnet.summary["morpho"]["address"])
        if h.debt
    }
    assert set(morpho_rows) == set(expected)
    healths = [int(r["health_factor_wad"]) for r in rows]
    assert healths == sorted(healths)


def test_below_keeps_only_weaker_positions(devnet: Devnet) -> None:
    rows = positions_json(devnet, "--below", "1.05")["positions"]
    assert isinstance(rows, list) and rows
    assert all(int(r["health_factor_wad"]) < 105 * WAD // 100 for r in rows)
    assert len(rows) < len(positions_json(devnet)["positions"])  # type: ignore[arg-type]


def test_table_is_sorted_and_summarised(devnet: Devnet) -> None:
    proc = run_keeper("positions", "--config", str(devnet.config_path))
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert lines[0].split()[:4] == ["protocol", "market", "user", "health"]
    assert lines[-1].endswith("liquidatable")
    health_column = [float(line.split()[3]) for line in lines[1:-1]]
    assert health_column == sorted(health_column)


def test_wrong_chain_id_is_one_clear_line(devnet: Devnet, tmp_path: Path) -> None:
    path = variant(devnet, tmp_path / "keeper.toml", {"chain": {"chain_id": 1}})
    proc = run_keeper("positions", "--config", str(path))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines()[-1] == (
        "keeper: error: chain.chain_id is 1 but the RPC endpoint serves chain 31337"
    )


def test_unreachable_rpc_fails_with_a_reason_not_a_traceback(devnet: Devnet, tmp_path: Path) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    urls = [devnet.summary["ws_url"], dead]  # the WebSocket stays; the HTTP endpoint reads use is dead
    path = variant(devnet, tmp_path / "keeper.toml", {"chain": {"rpc_urls": urls}})
    proc = run_keeper("positions", "--config", str(path), timeout_s=120)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    assert "unreachable" in proc.stderr.splitlines()[-1]


def test_positions_reads_the_store_when_there_is_one(devnet: Devnet, tmp_path: Path) -> None:
    store = tmp_path / "store.sqlite"
    path = variant(devnet, tmp_path / "keeper.toml", {"store": {"path": str(store)}})
    without = run_keeper("positions", "--config", str(path), "--json")
    assert without.returncode == 0 and "scanning events from start_block" in without.stderr
    assert not store.exists()  # a read-only command leaves no store behind
    synced = run_keeper("sync", "--config", str(path))
    assert synced.returncode == 0, synced.stderr
    assert store.exists()
    devnet.rpc.call("evm_mine")
    with_store = run_keeper("positions", "--config", str(path), "--json")
    assert with_store.returncode == 0, with_store.stderr
    assert "scanning events from start_block" not in with_store.stderr
    assert "backfill: 1/1 blocks" in with_store.stderr  # only the block after the store's cursor

    def accounts(stdout: str) -> set[tuple[str, str, str]]:  # health moved on with the mined block's interest
        return {(p["protocol"], p["market"], p["user"]) for p in json.loads(stdout)["positions"]}

    assert accounts(with_store.stdout) == accounts(without.stdout)
