"""Command line: `keeper run | positions | stress | sync | check-config | status | executor deploy |
guard status | guard reset`,
and the devnet's `keeper devnet up | down | price | inspect | build`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from keeper.devnet.commands import add_devnet_parser, run_devnet
from keeper.errors import KeeperError, UsageError

if TYPE_CHECKING:
    from keeper.config import Config
    from keeper.obs.progress import Report

EXIT_USAGE = 2
EXIT_FAILURE = 1


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so every bad input ends the same way."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="keeper", description="Liquidation keeper for Aave V3 and Morpho Blue.")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    add_devnet_parser(commands, _Parser)
    positions = commands.add_parser(
        "positions",
        help="every borrower's health, computed locally at head, lowest first",
        description="Discover every borrower of the configured protocols from their events "
        "(start_block to head), read their exact state at head in batched calls, and print each "
        "position's health as the protocol computes it. Aave amounts are in the oracle's base "
        "currency; Morpho Blue amounts in the market's loan/collateral token units. Progress goes "
        "to stderr.",
    )
    positions.add_argument("--config", type=Path, required=True, metavar="PATH", help="keeper config (TOML)")
    positions.add_argument("--json", action="store_true", help="one JSON object; big integers as strings")
    positions.add_argument(
        "--below", type=_health_factor, default=None, metavar="HF", help="only positions with health < HF"
    )
    run = commands.add_parser(
        "run",
        help="the keeper: follow blocks, liquidate positions that cross their threshold",
        description="Bring the position store to head, then for every block re-read what changed, "
        "compute every position's health exactly, and liquidate the liquidatable ones that pay "
        "after gas (simulated first; inventory mode: the keeper pays the debt from its own "
        'balance). With --dry-run (or execution.mode = "dry-run") everything up to signing '
        "happens and each would-be liquidation is logged with its expected profit; nothing is "
        "sent. Logs are JSON lines on stderr (a readable format on a terminal). Stops on SIGINT "
        "or SIGTERM. With --fork it runs live on a local Anvil fork of the configured chain "
        "instead, which it starts and stops itself, and reports what it liquidated there.",
    )
    run.add_argument("--config", type=Path, required=True, metavar="PATH", help="keeper config (TOML)")
    run.add_argument("--dry-run", action="store_true", help="simulate and report, never send")
    run.add_argument(
        "--fork",
        action="store_true",
        help="run live on a local Anvil fork of chain.rpc_urls at its head (harmless: nothing leaves "
        "the fork; fresh temporary store, no status server), then print one JSON object: each "
        "liquidation's predicted vs realized profit and gas, and totals",
    )
    run.add_argument(
        "--fork-blocks",
        type=_blocks,
        default=None,
        metavar="N",
        help="with --fork: stop after N blocks processed (default: at SIGINT/SIGTERM)",
    )
    run.add_argument(
        "--fork-block-time",
        type=_seconds,
        default=1.0,
        metavar="SECONDS",
        help="with --fork: the fork mines a block this often (default 1)",
    )

    stress = commands.add_parser(
        "stress",
        help="what-if: which positions a price shock makes liquidatable, and what it would move",
        description="Shock oracle prices (e.g. --shock WETH=-30 --shock WBTC=-20) over every tracked "
        "position (from the store when there is one) and evaluate them with the protocols' own "
        "maths: positions liquidatable before and after, the debt to cover and the collateral "
        "released per asset, and how many would still be liquidatable after their first "
        "liquidation (second round, estimated); with the flash strategy, what those liquidations "
        "would make through the executor (today's DEX quotes moved by the shock). Nothing is sent.",
    )
    stress.add_argument("--config", type=Path, required=True, metavar="PATH", help="keeper config (TOML)")
    stress.add_argument(
        "--shock",
        action="append",
        required=True,
        type=_shock,
        metavar="ASSET=PERCENT",
        help="asset symbol or address, and a price move in percent (> -100); repeatable",
    )
    stress.add_argument("--json", action="store_true", help="one JSON object; amounts as strings")

    check = commands.add_parser(
        "check-config",
        help="validate the config and everything `keeper run` checks at start, then report",
        description="Parse and validate the config (env overrides included), reach the RPC, check the "
        "chain id (of every endpoint), Multicall3 at chain.multicall3 and that every configured "
        "contract has code, load the signer, and report the "
        "wallet: native balance and, per debt token, balance and approval. Exit 0 when all is "
        "well, 2 with one line naming the key and the problem otherwise.",
    )
    check.add_argument("--config", type=Path, required=True, metavar="PATH", help="keeper config (TOML)")

    executor = commands.add_parser("executor", help="the keeper's own flash-loan liquidation executor")
    executor_commands = executor.add_subparsers(dest="executor_command", required=True, parser_class=_Parser)
    deploy = executor_commands.add_parser(
        "deploy",
        help="deploy a LiquidationExecutor owned by the configured signer, print one JSON object",
        description="Compile deploy/executor/LiquidationExecutor.sol (solc-js, cached), check the "
        "RPC serves chain.chain_id, deploy the executor from the configured signer (its owner) and "
        "print one JSON object: executor, owner, beneficiary, tx, block, gas_used. Put the address "
        "in execution.executor.",
    )
    deploy.add_argument("--config", type=Path, required=True, metavar="PATH", help="keeper config (TOML)")
    deploy.add_argument(
        "--beneficiary",
        type=_address,
        default=None,
        metavar="ADDRESS",
        help="where profits go (default: the signer's address)",
    )

    guard = commands.add_parser("guard", help="the spend guard: is it tripped, and clearing it")
    guard_commands = guard.add_subparsers(dest="guard_command", required=True, parser_class=_Parser)
    guard_status = guard_commands.add_parser(
        "status",
        help="print one JSON object: tripped or not, why, and each cap's figure and limit",
        description="Read the store (store.path): whether the spend guard is tripped (which cap, "
        "its window, figure and limit, at which block), and each cap's figure over its rolling "
        "window ending now (this machine's clock, against block timestamps). Wei as strings.",
    )
    guard_reset = guard_commands.add_parser(
        "reset",
        help="clear a tripped spend guard; the keeper sends again (a running one at its next block)",
        description="Clear the trip recorded in the store and forgive every settlement counted so "
        "far, so the caps count afresh from now. Print one JSON object: the trip cleared (or null) "
        "and how many settlements were forgiven.",
    )
    for command in (guard_status, guard_reset):
        command.add_argument(
            "--config", type=Path, required=True, metavar="PATH", help="keeper config (TOML)"
        )

    status = commands.add_parser(
        "status",
        help="ask a running keeper's status server how it is doing",
        description="Read /readyz and /metrics from a running keeper (metrics.listen) and print "
        "readiness, the last block, positions tracked, liquidations won and in flight. Exit 0 "
        "when ready, 1 when not ready, 2 when the server cannot be reached.",
    )
    status.add_argument(
        "--url",
        default="http://127.0.0.1:9108",
        metavar="URL",
        help="status server (default http://127.0.0.1:9108)",
    )

    sync = commands.add_parser(
        "sync",
        help="bring the position store to head (backfill or warm restart); --follow keeps it there",
        description="Discover every borrower of the configured protocols from their events and keep "
        "the store at store.path current: the first run scans from each protocol's start_block, "
        "later runs resume from the store's cursor (after checking it is still canonical). With "
        "--follow, apply every new block (WebSocket newHeads when chain.rpc_urls has a ws:// URL, "
        "else polling) and handle reorgs, until SIGINT or SIGTERM. Progress goes to stderr.",
    )
    sync.add_argument("--config", type=Path, required=True, metavar="PATH", help="keeper config (TOML)")
    sync.add_argument("--follow", action="store_true", help="keep applying new blocks until interrupted")
    sync.add_argument(
        "--max-log-span",
        type=_blocks,
        default=50_000,
        metavar="BLOCKS",
        help="largest eth_getLogs range to ask for (default 50000; ranges also shrink on provider errors)",
    )
    return parser


def _address(text: str) -> str:
    from keeper.config import checked_address

    try:
        return checked_address(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _blocks(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be >= 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def _shock(text: str) -> tuple[str, Fraction]:
    asset, sep, percent = text.partition("=")
    try:
        move = Fraction(percent.strip()) / 100
    except (ValueError, ZeroDivisionError):
        move = Fraction(-2)
    if not sep or not asset.strip() or move <= -1:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected ASSET=PERCENT with PERCENT > -100, e.g. WETH=-30"
        )
    return asset.strip(), move


def _health_factor(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number, e.g. 1.05") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"{text} must be > 0")
    return value


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = build_parser().parse_args(argv)
        return _dispatch(args)
    except UsageError as exc:
        for line in str(exc).splitlines() or [""]:  # several problems: one line each
            print(f"keeper: error: {line}", file=sys.stderr)
        return EXIT_USAGE
    except KeeperError as exc:
        print(f"keeper: failed: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `keeper positions | head`: the reader left, nothing more to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as exc:  # a bug: its traceback is one log event, the operator reads one line
        return _crashed(exc)


def _crashed(exc: Exception) -> int:
    from keeper.obs.logs import configure

    configure()  # on this process's stderr now, whatever the command set up: it is about to exit
    structlog.get_logger(__name__).error("keeper_crashed", exc_info=exc)
    cause: BaseException = exc
    while isinstance(cause, BaseExceptionGroup) and cause.exceptions:
        cause = cause.exceptions[0]
    summary = f"{type(cause).__name__}: {cause}".splitlines()[0][:300]
    print(f"keeper: failed: unexpected {summary} (traceback in the keeper_crashed event)", file=sys.stderr)
    return EXIT_FAILURE


def _dispatch(args: argparse.Namespace) -> int:
    if args.command == "devnet":
        return run_devnet(args)
    if args.command == "positions":
        return _positions(args)
    if args.command == "sync":
        return _sync(args)
    if args.command == "run":
        return _run(args)
    if args.command == "check-config":
        return _check_config(args)
    if args.command == "stress":
        return _stress(args)
    if args.command == "status":
        return _status(args.url)
    if args.command == "executor":
        return _executor_deploy(args)
    if args.command == "guard":
        return _guard(args)
    raise UsageError(f"unknown command {args.command}")


def _positions(args: argparse.Namespace) -> int:
    import asyncio

    from keeper import positions
    from keeper.config import load_config
    from keeper.obs.logs import configure

    config = load_config(args.config)
    configure(json_lines=False, level=30)  # warnings on stderr: stdout is the report (--json)
    report = asyncio.run(positions.collect(config, positions.stderr_progress))
    rows = positions.below(report, args.below)
    print(positions.render_json(report, rows) if args.json else positions.render_table(report, rows))
    return 0


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from keeper.config import load_config
    from keeper.daemon import Daemon, Mode
    from keeper.obs.logs import configure

    config = load_config(args.config)
    configure()

    def report(message: str) -> None:
        print(f"[run] {message}", file=sys.stderr, flush=True)

    if args.fork:
        return _run_fork(args, config, report)
    if args.fork_blocks is not None:
        raise UsageError("--fork-blocks goes with --fork")
    dry_run = args.dry_run or config.execution.mode == "dry-run"
    asyncio.run(Daemon(config, Mode.DRY_RUN if dry_run else Mode.LIVE, report, os.environ).serve())
    return 0


def _run_fork(args: argparse.Namespace, config: Config, report: Report) -> int:
    from keeper.fork.run import ForkOptions, run_fork

    if args.dry_run:
        raise UsageError("--fork runs live on the fork (harmless there); drop --dry-run")
    options = ForkOptions(blocks=args.fork_blocks, block_time_s=args.fork_block_time)
    print(json.dumps(run_fork(config, options, report, os.environ)), flush=True)
    return 0


def _guard(args: argparse.Namespace) -> int:
    import time

    from keeper.config import load_config
    from keeper.execution.spend_guard import limits_of, reset_json, status_json
    from keeper.state.store import Store

    config = load_config(args.config)
    if not config.store.path.is_file():
        raise UsageError(f"store.path: no store at {config.store.path} (the keeper has not run here yet)")
    with Store.open(config.store.path) as store:
        if args.guard_command == "reset":
            result = reset_json(store)
        else:
            result = status_json(store, limits_of(config.guard), int(time.time()))
    print(json.dumps(result))
    return 0


def _stress(args: argparse.Namespace) -> int:
    import asyncio

    from keeper import positions
    from keeper.app import flash_setup
    from keeper.config import load_config
    from keeper.obs.logs import configure
    from keeper.risk.stress import stress

    config = load_config(args.config)
    configure(json_lines=False, level=30)  # warnings on stderr: stdout is the report (--json)
    sync, symbols = asyncio.run(positions.synced_positions(config, positions.stderr_progress))
    by_symbol = {symbol.upper(): address for address, symbol in symbols.items() if ":" not in address}
    shocks = {}
    for asset, move in args.shock:
        address = by_symbol.get(asset.upper()) or next(
            (a for a in symbols if a.lower() == asset.lower()), None
        )
        if address is None:
            raise UsageError(
                f"--shock {asset}: unknown asset; tracked tokens: {', '.join(sorted(by_symbol))}"
            )
        shocks[address] = move
    assert sync.head is not None
    results = [stress(t.name, t.adapter, shocks, sync.head.timestamp) for t in sync.protocols]
    setup = flash_setup(config)
    flash = asyncio.run(positions.flash_what_if(config, setup, results, shocks)) if setup else []
    print(positions.render_stress(sync.head.number, shocks, results, symbols, args.json, flash))
    return 0


def _check_config(args: argparse.Namespace) -> int:
    import asyncio

    from keeper.checks import check_config
    from keeper.config import load_config
    from keeper.obs.logs import configure

    config = load_config(args.config)
    configure(json_lines=False, level=30)  # warnings only: the report is the output
    build = None
    if config.execution.executor is not None:
        from keeper.devnet.toolchain import compiled_executor, toolchain

        build = compiled_executor(toolchain())
    for line in asyncio.run(check_config(config, os.environ, build)):
        print(line)
    print("config ok")
    return 0


def _executor_deploy(args: argparse.Namespace) -> int:
    import asyncio

    from keeper.chain.pool import RpcPool, http_urls
    from keeper.chain.preflight import check_chain_id
    from keeper.config import load_config
    from keeper.devnet.toolchain import compiled_executor, toolchain
    from keeper.errors import Retryable
    from keeper.execution.executor_contract import deploy_executor
    from keeper.execution.signer import Signer
    from keeper.obs.logs import configure

    config = load_config(args.config)
    configure(json_lines=False, level=30)  # warnings only: stdout is the JSON report
    signer = Signer.from_config(config.signer, config.chain.chain_id, os.environ)
    build = compiled_executor(toolchain())

    async def deploy() -> dict[str, object]:
        urls = http_urls(config.chain.rpc_urls)
        async with RpcPool(
            urls,
            max_attempts=1,
            timeout_s=30,
            multicall3=config.chain.multicall3,
            chain_id=config.chain.chain_id,
        ) as rpc:
            try:
                await check_chain_id(rpc, config.chain.chain_id)
            except Retryable as exc:
                raise UsageError(f"chain.rpc_urls: no endpoint answered ({exc})") from None
            beneficiary = args.beneficiary or signer.address
            return await deploy_executor(rpc, signer, build, beneficiary, config.execution)

    print(json.dumps(asyncio.run(deploy())))
    return 0


def _status(url: str) -> int:
    import re
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(url.rstrip("/") + "/metrics", timeout=5) as response:
            metrics = response.read().decode()
        try:
            with urllib.request.urlopen(url.rstrip("/") + "/readyz", timeout=5) as response:
                ready = json.loads(response.read())
        except urllib.error.HTTPError as exc:  # 503: not ready, with the reason in the body
            ready = json.loads(exc.read())
    except (urllib.error.URLError, OSError) as exc:
        raise UsageError(f"--url: {url} unreachable ({exc})") from None
    samples = re.findall(r"^(keeper_\w+)(\{[^}]*\})? (\S+)$", metrics, re.MULTILINE)

    def total(name: str, **labels: str) -> int:
        wanted = [f'{label}="{value}"' for label, value in labels.items()]
        return int(sum(float(v) for n, found, v in samples if n == name and all(w in found for w in wanted)))

    print(f"ready         {ready.get('ready')} {ready.get('reason', '')}".rstrip())
    print(f"block         {ready.get('block')}, {ready.get('blocks_behind', '?')} behind")
    print(f"positions     {total('keeper_positions_tracked')}")
    won, in_flight = (
        total("keeper_opportunities_total", outcome="won"),
        total("keeper_transactions_in_flight"),
    )
    print(f"liquidations  {won} won, {in_flight} in flight")
    return 0 if ready.get("ready") else EXIT_FAILURE


def _sync(args: argparse.Namespace) -> int:
    import asyncio

    from keeper.config import load_config
    from keeper.daemon import Daemon, Mode, SyncOptions

    config = load_config(args.config)

    def report(message: str) -> None:
        print(f"[sync] {message}", file=sys.stderr, flush=True)

    options = SyncOptions(follow=args.follow, max_log_span=args.max_log_span)
    asyncio.run(Daemon(config, Mode.SYNC, report, options=options).serve())
    return 0
