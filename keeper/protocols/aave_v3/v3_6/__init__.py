"""Aave v3.6: what differs from v3.0.x (``aave-v3.6-notes.md``); the shared modules hold the rest."""
