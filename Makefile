# Two commands do everything on a fresh machine (python3.11+, node/npm, make):
#   make demo   set up, start the devnet, run the keeper live through a price crash
#   make test   set up, then ruff, mypy --strict and pytest (unit + integration on a real Anvil)

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEVNET := deploy/devnet
DEMO_PORT ?= 8545

.PHONY: setup demo test lint typecheck layers pytest clean bench

$(BIN)/keeper: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

$(DEVNET)/node_modules/.keeper-installed: $(DEVNET)/package.json $(DEVNET)/package-lock.json
	cd $(DEVNET) && npm ci --no-audit --no-fund
	touch $@

setup: $(BIN)/keeper $(DEVNET)/node_modules/.keeper-installed
	$(BIN)/keeper devnet build

demo: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" bash $(DEVNET)/demo.sh $(DEMO_PORT)

lint: setup
	$(BIN)/ruff check keeper tests bench
	$(BIN)/ruff format --check keeper tests bench

typecheck: setup
	$(BIN)/mypy --strict keeper

# the layer contract in pyproject.toml [tool.importlinter]: imports point down the stack only
layers: setup
	$(BIN)/lint-imports --no-cache

pytest: setup
	$(BIN)/pytest

test: lint typecheck layers pytest

# measurements, not tests: sync, health pass at 10k / 100k / 1M positions (one BLAS thread: the screen's
# product is skinny), keeper vs baseline poller; then bench/results/latest.json and one Markdown table
bench: setup
	$(BIN)/python -m bench.sync
	for n in 10000 100000 1000000; do \
	  OPENBLAS_NUM_THREADS=1 $(BIN)/python -m bench.health --positions $$n --repeat 5 && \
	  cp bench/results/health.json bench/results/health_$$n.json || exit 1; \
	done
	$(BIN)/python -m bench.compare --shocks 50
	$(BIN)/python -m bench.latest

# regenerate abis/ from the pinned npm artifacts (and the devnet's cached solc build for Morpho Blue)
.PHONY: abis
abis: setup
	$(BIN)/python -m keeper.devnet.abis

clean:
	rm -rf $(VENV) $(DEVNET)/node_modules .mypy_cache .ruff_cache .pytest_cache
