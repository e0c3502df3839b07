"""Position state: the durable SQLite store, the sent transactions and their pure state machine, sync.

Nothing is re-exported here, so importing the pure `keeper.state.txstate` does not open SQLite.
"""
