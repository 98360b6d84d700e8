# Every target creates .venv and installs the package with its dev extras first,
# so `make demo` and `make test` work on a clean clone with only Python 3 present.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=
SEEDS ?= 20
NODES ?= 3
KILLS ?= 50

BENCH_STAMP := $(VENV)/.bench-stamp

.PHONY: demo test chaos crash bench bench-publish lint typecheck check clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,net,kv]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/demo.py

test: $(STAMP)
	$(BIN)/python -m pytest -n $${PYTEST_WORKERS:-2} --dist worksteal $(PYTEST_ARGS)

# pykka_raft against PySyncObj, the Pykka substrate and the disk, every setting 5 times
# interleaved; about 10 minutes on 2 cores (BENCH_ARGS=--quick: a one-minute smoke run).
# Figures go to build/bench/; bench-publish also updates bench/results/,
# docs/benchmarks.png and docs/benchmarks.md. See docs/benchmarks.md.
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[dev,net,kv,bench]'
	touch $(BENCH_STAMP)

bench: $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

bench-publish: $(BENCH_STAMP)
	$(BIN)/python -m bench --publish $(BENCH_ARGS)

# Seeded chaos runs of real actor clusters (a few seconds each): make chaos SEEDS=500
# add MEMBERSHIP=1 to let the nemesis change the membership too
chaos: $(STAMP)
	$(BIN)/python -m pykka_raft.testing.chaos --seeds $(SEEDS) --nodes $(NODES) \
		$(if $(MEMBERSHIP),--membership)

# SIGKILL a 3-node SqliteStore cluster N times (about 2.5 s each), checking that no
# acknowledged write is lost: make crash KILLS=200 [SEED=7]; see docs/storage.md
crash: $(STAMP)
	$(BIN)/python tests/integration/crashloop.py --kills $(KILLS) $(if $(SEED),--seed $(SEED))

lint: $(STAMP)
	$(BIN)/ruff check pykka_raft tests examples bench
	$(BIN)/ruff format --check pykka_raft tests examples bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
