"""A baseline liquidator written the way most public Aave bots are, to measure the keeper against."""
