"""Moved to `keeper.state.txstate` (state owns the transaction records); kept while tests/e2e imports it."""

from keeper.state.txstate import TERMINAL, SentTx, TxState, allowed

__all__ = ["TERMINAL", "SentTx", "TxState", "allowed"]
