# Every target creates .venv and installs the package with its dev extras first,
# so `make demo` and `make test` work on a clean clone with only Python 3 present.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
SEEDS ?= 20
NODES ?= 3

BENCH_STAMP := $(VENV)/.bench-stamp

.PHONY: demo test chaos bench lint typecheck check clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,kv]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# pykka_raft against the Pykka substrate and PySyncObj; a few minutes; see docs/benchmarks.md
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

# Seeded chaos runs of real actor clusters (a few seconds each): make chaos SEEDS=500
# add MEMBERSHIP=1 to let the nemesis change the membership too
chaos: $(STAMP)
	$(BIN)/python -m pykka_raft.testing.chaos --seeds $(SEEDS) --nodes $(NODES) \
		$(if $(MEMBERSHIP),--membership)

lint: $(STAMP)
	$(BIN)/ruff check pykka_raft tests examples bench
	$(BIN)/ruff format --check pykka_raft tests examples bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
