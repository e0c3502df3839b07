"""Morpho Blue 1.0.0: isolated markets, one loan token and one collateral token each."""
