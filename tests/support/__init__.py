"""What the tests and the benchmarks share: free ports, a devnet, the keeper as a subprocess, and
keeper configs built through `keeper.config` (never by editing TOML text).

`bench/` runs from the repository root (`python -m bench.sync`), so `tests.support` is importable
there too; nothing here imports pytest.
"""
