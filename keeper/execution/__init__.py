"""Execution: gas policy (pure), signer, and later nonce manager, simulation, sending and tracking."""
