"""`keeper run --fork`: the keeper live on a local Anvil fork of the configured chain, and its report."""
