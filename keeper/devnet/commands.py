"""`keeper devnet up | down | price | inspect | build`: the local devnet's command line."""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from types import FrameType
from typing import Any

from keeper.errors import DevnetError, UsageError

from .spec import AAVE_VERSIONS, DEFAULT_AAVE_VERSION

EXIT_FAILURE = 1


def add_devnet_parser(commands: Any, parser_class: type[argparse.ArgumentParser]) -> None:
    devnet = commands.add_parser(
        "devnet", help="local Anvil devnet with real Aave V3, Morpho Blue and Uniswap V3"
    )
    devnet_commands = devnet.add_subparsers(dest="devnet_command", required=True, parser_class=parser_class)

    up = devnet_commands.add_parser(
        "up",
        help="start Anvil, deploy both protocols and a DEX, seed borrowers, print a JSON summary",
        description="Start Anvil, deploy Aave V3 and Morpho Blue with settable price feeds, "
        "Uniswap V3 with a pool for every collateral/debt pair, and Multicall3, seed borrowers "
        "and a funded keeper account, write a keeper config and print one JSON object on stdout "
        "(progress goes to stderr).",
    )
    up.add_argument("--port", type=int, default=8545, help="Anvil port (default 8545)")
    up.add_argument(
        "--host",
        default="127.0.0.1",
        help="address Anvil listens on (default 127.0.0.1; 0.0.0.0 in a container)",
    )
    up.add_argument(
        "--aave-version",
        choices=AAVE_VERSIONS,
        default=DEFAULT_AAVE_VERSION,
        help="Aave V3 version to deploy: 3.6 (the default: @aave-dao/aave-v3-origin 3.6.0 compiled "
        "with solc-js 0.8.27, what production markets run) or 3.0 (v3.0.x, @aave/core-v3 artifacts)",
    )
    up.add_argument("--aave-borrowers", type=_count, default=200, metavar="N", help="default 200")
    up.add_argument("--morpho-borrowers", type=_count, default=200, metavar="M", help="default 200")
    up.add_argument("--seed", type=int, default=1, metavar="S", help="random seed for borrowers (default 1)")
    up.add_argument(
        "--block-time",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="mine a block every SECONDS after seeding (default: a block per transaction)",
    )
    up.add_argument(
        "--config-out",
        type=Path,
        default=Path("config/devnet.toml"),
        metavar="PATH",
        help="where to write the keeper config (default config/devnet.toml)",
    )
    up.add_argument(
        "--detach",
        action="store_true",
        help="return once ready and leave Anvil running (stop it with `keeper devnet down`)",
    )

    down = devnet_commands.add_parser("down", help="stop a devnet started with --detach")
    down.add_argument("--port", type=int, default=8545, help="Anvil port (default 8545)")

    price = devnet_commands.add_parser(
        "price",
        help="move one asset's price feed with a real feed transaction, and every Uniswap pool "
        "trading it to the new price in the same block",
    )
    price.add_argument("--rpc", required=True, metavar="URL", help="devnet RPC, e.g. http://127.0.0.1:8545")
    price.add_argument("--asset", required=True, metavar="SYMBOL", help="e.g. WETH, WBTC, USDC, DAI")
    target = price.add_mutually_exclusive_group(required=True)
    target.add_argument("--set", metavar="USD", help="new price in USD, e.g. 1650.5")
    target.add_argument("--move", metavar="PERCENT", help="relative move in percent, e.g. -20")
    devnet_commands.add_parser(
        "build", help="check the npm packages and compile the devnet's Solidity into the cache"
    )
    inspect = devnet_commands.add_parser(
        "inspect", help="print reserves, markets and borrower health read from the contracts"
    )
    inspect.add_argument(
        "--config",
        type=Path,
        default=Path("config/devnet.toml"),
        metavar="PATH",
        help="the config `devnet up` wrote (default config/devnet.toml)",
    )


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"{text} must be >= 0")
    return value


def _seconds(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text} must be a whole number of seconds >= 1")
    return value


def run_devnet(args: argparse.Namespace) -> int:
    from keeper.devnet import anvil, feeds, toolchain, up
    from keeper.devnet.config_out import devnet_config_toml
    from keeper.devnet.rpc import Rpc
    from keeper.devnet.uniswap import check_pool_init_code_hash

    chain = toolchain.toolchain()
    if args.devnet_command == "down":
        if not anvil.stop_anvil(chain, args.port):
            raise UsageError(f"no detached devnet recorded on port {args.port}")
        return 0
    if args.devnet_command == "price":
        rpc = Rpc(args.rpc, timeout_s=10)
        try:
            rpc.call("eth_chainId")
        except DevnetError as exc:
            raise UsageError(f"--rpc: {exc}") from None
        if args.set is not None:
            update = feeds.set_price(rpc, args.asset, usd=feeds.parse_usd(args.set))
        else:
            update = feeds.set_price(rpc, args.asset, move=feeds.parse_percent(args.move))
        print(
            json.dumps(
                asdict(update) | {"old_answer": str(update.old_answer), "new_answer": str(update.new_answer)}
            )
        )
        return 0
    if args.devnet_command == "build":
        toolchain.find_anvil(chain)
        toolchain.aave_artifact(chain, "Pool")
        toolchain.multicall3_creation_code(chain)
        check_pool_init_code_hash(chain)
        compiled = toolchain.compiled_contracts(chain)
        aave_v36 = toolchain.compiled_aave_v36(chain)
        print(
            f"devnet toolchain ready: {len(compiled)} contracts compiled, Aave v3.6 "
            f"{len(aave_v36)} contracts, cache {chain.cache_dir}"
        )
        return 0
    if args.devnet_command == "inspect":
        print(_inspect(args.config))
        return 0
    options = up.UpOptions(
        port=args.port,
        aave_borrowers=args.aave_borrowers,
        morpho_borrowers=args.morpho_borrowers,
        seed=args.seed,
        block_time_s=args.block_time,
        config_out=args.config_out,
        host=args.host,
        aave_version=args.aave_version,
    )
    process, summary = up.devnet_up(chain, options)
    if options.config_out is not None:
        options.config_out.parent.mkdir(parents=True, exist_ok=True)
        options.config_out.write_text(devnet_config_toml(summary))
        summary["config"] = str(options.config_out)
    print(json.dumps(summary), flush=True)
    if args.detach:
        return 0
    return _wait_for_stop(lambda: anvil.stop_anvil(chain, options.port), process.pid)


def _inspect(config_path: Path) -> str:
    from keeper.config import AaveV3Config, MorphoBlueConfig, load_config
    from keeper.devnet.inspect import report
    from keeper.devnet.rpc import Rpc

    config = load_config(config_path)
    http = [u for u in config.chain.rpc_urls if u.startswith("http")]
    if not http:
        raise UsageError(f"{config_path}: chain.rpc_urls has no http(s) endpoint")
    aave = [p for p in config.protocols if isinstance(p, AaveV3Config)]
    blue = [p for p in config.protocols if isinstance(p, MorphoBlueConfig)]
    if not aave or not blue:
        raise UsageError(f"{config_path}: a devnet config has one aave_v3 and one morpho_blue protocol")
    return report(Rpc(http[0], timeout_s=30), aave[0].pool_addresses_provider, blue[0].address)


def _wait_for_stop(stop: Callable[[], object], pid: int) -> int:
    """Foreground devnet: keep Anvil until Ctrl-C or SIGTERM, then stop it."""

    def _interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    print("devnet running; Ctrl-C stops it", file=sys.stderr, flush=True)
    try:
        while True:
            try:
                finished, _ = os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                finished = pid
            if finished:
                print("keeper: failed: anvil exited", file=sys.stderr)
                return EXIT_FAILURE
            time.sleep(0.5)
    except KeyboardInterrupt:
        stop()
        return 0
