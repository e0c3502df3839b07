"""Protocol adapters.

Each folder uses the same file names: events, state, math, liquidation, screen, reader, adapter.
"""
