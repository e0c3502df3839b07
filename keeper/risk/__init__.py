"""Pure risk maths over many positions: the per-block float screen, opportunity valuation."""
