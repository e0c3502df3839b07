"""The chain layer: JSON-RPC transport, batched reads, logs and blocks. The only code that talks to nodes."""
