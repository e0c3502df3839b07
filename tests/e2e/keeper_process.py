"""The keeper subprocess helpers now live in `tests.support`; this module keeps their old import path."""

from tests.support.config import keeper_config
from tests.support.keeper import KEEPER_KEY, RUNNING, Event, KeeperProcess

__all__ = ["KEEPER_KEY", "RUNNING", "Event", "KeeperProcess", "keeper_config"]
