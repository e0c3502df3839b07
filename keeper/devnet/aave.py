"""Deploy the real Aave V3 on Anvil, in the version asked for; the market shape is the same in both.

v3.0.x comes from the published `@aave/core-v3` artifacts (`aave_v30`), v3.6 from the
`@aave-dao/aave-v3-origin` sources compiled here (`aave_v36`); what they share (ACL, oracle on the
devnet's feeds, data provider, risk parameters) is in `aave_market`.
"""

from __future__ import annotations

from .aave_market import AaveDeployment
from .aave_v30 import deploy_aave_v30
from .aave_v36 import deploy_aave_v36
from .rpc import Executor
from .spec import AAVE_VERSIONS, DEFAULT_AAVE_VERSION
from .toolchain import Toolchain

__all__ = ["AAVE_VERSIONS", "DEFAULT_AAVE_VERSION", "AaveDeployment", "deploy_aave"]


def deploy_aave(
    ex: Executor,
    chain: Toolchain,
    admin_address: str,
    tokens: dict[str, str],
    feeds: dict[str, str],
    version: str = DEFAULT_AAVE_VERSION,
) -> AaveDeployment:
    if version == "3.0":
        return deploy_aave_v30(ex, chain, admin_address, tokens, feeds)
    if version == "3.6":
        return deploy_aave_v36(ex, chain, admin_address, tokens, feeds)
    raise ValueError(f"unsupported Aave version {version!r}; expected one of {', '.join(AAVE_VERSIONS)}")
