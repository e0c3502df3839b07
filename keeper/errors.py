"""Exception hierarchy: each class says what the caller should do about it."""

from __future__ import annotations


class KeeperError(Exception):
    """Root of every error the keeper raises on purpose."""


class UsageError(KeeperError, ValueError):
    """Bad input from the operator (flag, config, environment): print one line, exit 2."""


class Retryable(KeeperError):
    """A transient failure (RPC hiccup, timeout): the same call may succeed later."""


class SkipOpportunity(KeeperError):
    """This liquidation is not worth or not safe to attempt now; carry on with the others."""


class Halt(KeeperError):
    """Stop the daemon: continuing would be unsafe (wrong chain, lost nonce, corrupt store)."""


class DevnetError(KeeperError):
    """The local devnet could not be started, deployed or seeded."""
