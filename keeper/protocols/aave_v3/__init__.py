"""Aave V3 (v3.0.x, as published in @aave/core-v3 1.19) and forks with the same ABI."""
