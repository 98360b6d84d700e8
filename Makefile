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

.PHONY: demo demo-embedded cluster test chaos counters crash crash-kv fuzz-net bench bench-publish \
	lint typecheck check clean

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,net,kv]'
	touch $(STAMP)

# The key-value service on three local processes (TCP + CURVE, SqliteStore), through a
# SIGKILL of its leader and a membership change; see docs/kv-service.md
demo: $(STAMP)
	$(BIN)/pykka-raft-kv demo

# The narrated in-process demo of the library alone (examples/demo.py)
demo-embedded: $(STAMP)
	$(BIN)/python examples/demo.py

# Three key-value nodes as local processes, left running until Ctrl-C
cluster: $(STAMP)
	$(BIN)/pykka-raft-kv local-cluster --nodes $(NODES)

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
# add MEMBERSHIP=1 to let the nemesis change the membership too, TCP=1 to carry RPCs over
# loopback TCP, VALUES=1 to write nested application values, STORAGE=sqlite for SqliteStore,
# ADMIN=1 to ask for leadership transfers and elections too (each flag off when 0 or unset);
# most reads bypass the log (ClientRead: READ_INDEX, LEASE, STALE) unless READS=0
chaos: $(STAMP)
	$(BIN)/python -m pykka_raft.testing.chaos --seeds $(SEEDS) --nodes $(NODES) \
		$(if $(filter-out 0,$(MEMBERSHIP)),--membership) $(if $(filter-out 0,$(TCP)),--tcp) \
		$(if $(filter-out 0,$(VALUES)),--values) $(if $(filter-out 0,$(ADMIN)),--admin) \
		$(if $(STORAGE),--storage $(STORAGE)) \
		$(if $(filter 0,$(READS)),--no-reads,--reads)

# Malformed and random frames against a live TCP cluster (100,000 of them); see docs/network.md
fuzz-net: $(STAMP)
	PYKKA_RAFT_FUZZ_FRAMES=100000 $(BIN)/python -m pytest -q tests/network/test_tcp_fuzz.py

# Seeded counter runs (about 5 s each): increments resent under crashes and partitions,
# checked to be applied exactly once: make counters SEEDS=200; see docs/clients.md
counters: $(STAMP)
	$(BIN)/python -m pykka_raft.testing.counters --seeds $(SEEDS) --nodes $(NODES)

# SIGKILL a 3-node SqliteStore cluster N times (about 2.5 s each), checking that no
# acknowledged write is lost: make crash KILLS=200 [SEED=7]; see docs/storage.md
crash: $(STAMP)
	$(BIN)/python tests/integration/crashloop.py --kills $(KILLS) $(if $(SEED),--seed $(SEED))

# SIGKILL nodes of a 3-process key-value cluster under an HTTP workload N times, checking
# linearizability and that no acknowledged write is lost: make crash-kv KILLS=100 [SEED=7]
crash-kv: $(STAMP)
	$(BIN)/python tests/integration/kv_crashloop.py --kills $(KILLS) $(if $(SEED),--seed $(SEED))

lint: $(STAMP)
	$(BIN)/ruff check pykka_raft tests examples bench
	$(BIN)/ruff format --check pykka_raft tests examples bench

typecheck: $(STAMP)
	$(BIN)/mypy

check: lint typecheck test

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
