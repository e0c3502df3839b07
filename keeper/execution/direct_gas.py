"""Gas limits for direct liquidations (inventory: the keeper's account calls the protocol itself).

The executor checks such a call with one ``eth_call`` at the limit it will send, instead of an
``eth_estimateGas`` (which runs the call several times over to search for the least gas): a call
that succeeds at that limit succeeds as a transaction with that limit in the same state. On the
devnet's Anvil, 320 liquidations are checked in 150-270 ms that way against 900-1,070 ms estimated.
The limit is the most gas one of the keeper's own liquidations of the protocol has used so far
(plus the executor's margin), or before the first, these path figures: measured on the devnet at
290k-382k for Aave v3.6 ``liquidationCall`` and 111k-135k for Morpho Blue ``liquidate``, with room
for users with more reserves and dearer oracles. A call that fails at its limit is estimated
after all (it may only need more gas); one that fails that too is not sent.
"""

from __future__ import annotations

from keeper.execution.flash import BURN_GAS
from keeper.protocols.base import ExecutorLeg

DIRECT_GAS = {"aave": 500_000, "morpho": 250_000}
"""Gas before the margin per protocol kind of `ExecutorLeg`, until the keeper has measured its own."""


def direct_gas(leg: ExecutorLeg | None) -> int | None:
    """The path's gas for the liquidation ``leg`` describes; None (estimate it) when there is none
    (a liquidation paid in aTokens has no executor leg)."""
    if leg is None:
        return None
    return DIRECT_GAS[leg.kind] + BURN_GAS * leg.extra_burns
