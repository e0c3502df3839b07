"""Deploy Morpho Blue 1.0.0 (compiled from its npm sources) with feed-backed oracles and a kinked IRM."""

from __future__ import annotations

from dataclasses import dataclass

from eth_abi.abi import encode
from eth_utils.crypto import keccak

from .abi import encode_args, encode_call
from .rpc import Executor, Tx
from .spec import MORPHO_IRM_APRS, MORPHO_MARKETS, asset
from .toolchain import Artifact

MARKET_PARAMS = "(address,address,address,address,uint256)"


@dataclass(frozen=True)
class MorphoMarket:
    id: str  # 0x-prefixed bytes32
    loan: str  # symbol
    collateral: str
    loan_token: str
    collateral_token: str
    oracle: str
    irm: str
    lltv: int

    @property
    def params(self) -> tuple[str, str, str, str, int]:
        return (self.loan_token, self.collateral_token, self.oracle, self.irm, self.lltv)


@dataclass(frozen=True)
class MorphoDeployment:
    address: str
    irm: str
    markets: tuple[MorphoMarket, ...]


def market_id(params: tuple[str, str, str, str, int]) -> str:
    return "0x" + keccak(encode(["address", "address", "address", "address", "uint256"], list(params))).hex()


def deploy_morpho(
    ex: Executor,
    artifacts: dict[str, Artifact],
    owner: str,
    tokens: dict[str, str],
    feeds: dict[str, str],
) -> MorphoDeployment:
    def deploy(name: str, ctor_sig: str, *args: object) -> str:
        code = bytes.fromhex(artifacts[name].bytecode) + encode_args(ctor_sig, *args)
        return ex.deploy(owner, code, name)

    morpho = deploy("Morpho", "(address)", owner)
    irm = deploy("KinkedIrm", "(uint256,uint256,uint256,uint256)", *MORPHO_IRM_APRS)
    markets = []
    for spec in MORPHO_MARKETS:
        loan, coll = asset(spec.loan), asset(spec.collateral)
        oracle = deploy(
            "FeedRatioOracle",
            "(address,address,uint256,uint256)",
            feeds[coll.symbol],
            feeds[loan.symbol],
            coll.decimals,
            loan.decimals,
        )
        params = (tokens[loan.symbol], tokens[coll.symbol], oracle, irm, spec.lltv)
        markets.append(MorphoMarket(market_id(params), loan.symbol, coll.symbol, *params))

    def tx(sig: str, *args: object) -> Tx:
        return Tx(owner, morpho, encode_call(sig, *args), sig)

    txs = [tx("enableIrm(address)", irm), tx("setFeeRecipient(address)", owner)]
    txs += [tx("enableLltv(uint256)", lltv) for lltv in sorted({m.lltv for m in markets})]
    txs += [tx(f"createMarket({MARKET_PARAMS})", m.params) for m in markets]
    txs += [
        tx(f"setFee({MARKET_PARAMS},uint256)", m.params, spec.fee)
        for m, spec in zip(markets, MORPHO_MARKETS, strict=True)
        if spec.fee
    ]
    ex.execute(txs)
    return MorphoDeployment(morpho, irm, tuple(markets))
