# Every target carries a `#? target: description` line; `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOT ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.setup-stamp
PROTO_SRC := proto/ledger/v1/ledger.proto proto/ledger/v1/peer.proto
PROTO_OUT := node/wire/ledger_pb2.py node/wire/peer_pb2.py
LOCK := requirements/validator.lock
# Wheels of the lock and of the build-system pins, for tests/packaging: it installs the
# project into fresh virtualenvs offline (--no-index), so tests download nothing.
WHEELHOUSE := $(VENV)/wheelhouse
BUILD_PINS := setuptools==80.9.0 grpcio-tools==1.85.1

# Simulation knobs (issue: consensus core); override on the command line.
SEEDS ?= 200
N ?= 4
Q ?=
BYZ ?=
BYZ_COUNT ?=

#? help: list every target with its one-line description
help:
	@grep -hE '^#\? ' $(MAKEFILE_LIST) | sed -e 's/^#? //' | awk '{i = index($$0, ": "); printf "  %-14s %s\n", substr($$0, 1, i - 1), substr($$0, i + 2)}'

# The validator's dependencies come from the lock, hash-checked, so development and CI run
# what the image runs; then the project itself (editable) with the tools.
$(STAMP): pyproject.toml $(LOCK) node/_version.py setup.py
	$(PYTHON_BOOT) -m venv $(VENV)
	$(PY) -m pip install --quiet --require-hashes -r $(LOCK)
	$(PY) -m pip install --quiet -e '.[validator,console,dev,bench,mutate]'
	$(PY) -m pip wheel --quiet --require-hashes -r $(LOCK) -w $(WHEELHOUSE)
	$(PY) -m pip wheel --quiet $(BUILD_PINS) -w $(WHEELHOUSE)
	touch $(STAMP)

# One protoc run writes every file (a grouped target: the recipe runs once).
$(PROTO_OUT) &: $(PROTO_SRC) proto/generate.py $(STAMP)
	$(PY) proto/generate.py

#? setup: create .venv, install the locked dependencies and the tools, generate protobuf/gRPC code
setup: $(STAMP) $(PROTO_OUT)

#? lock: rewrite requirements/validator.lock (uv, with hashes) from pyproject.toml's validator extra
.PHONY: lock
lock: $(STAMP)
	$(VENV)/bin/uv pip compile pyproject.toml --extra validator --generate-hashes \
		--python-version 3.11 --custom-compile-command "make lock" -o $(LOCK)

# The suite in two pytest runs (tests/isolation.py, docs/testing.md "CI wall time"): the
# tests that start no process on WORKERS cores (pytest-xdist; worksteal, because a test
# takes from milliseconds to a minute), then the `serial` ones (clusters, browsers, child
# processes) one at a time. Between them they select every test once; each run fails the
# target when a test fails and when it selected nothing (pytest's exit code 5).
WORKERS ?= 2
PYTEST_PARALLEL = $(PY) -m pytest -q -n $(WORKERS) --dist worksteal
PYTEST_SERIAL = $(PY) -m pytest -q

#? test: run the whole test suite (sets itself up first), the tests that start no process on WORKERS=2 cores first, then the serial ones
test: setup
	@rc=0; \
	echo '$(PYTEST_PARALLEL) -m "not serial"'; $(PYTEST_PARALLEL) -m "not serial" || rc=$$?; \
	echo '$(PYTEST_SERIAL) -m serial'; $(PYTEST_SERIAL) -m serial || rc=$$?; \
	exit $$rc

#? test-fast: run the suite without the slow tests (crash trials, long simulations, clusters), split the same way
test-fast: setup
	@rc=0; \
	echo '$(PYTEST_PARALLEL) -m "not slow and not serial"'; $(PYTEST_PARALLEL) -m "not slow and not serial" || rc=$$?; \
	echo '$(PYTEST_SERIAL) -m "not slow and serial"'; $(PYTEST_SERIAL) -m "not slow and serial" || rc=$$?; \
	exit $$rc

#? lint: ruff on everything, mypy --strict on node/, client/ and devtools/
lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

#? fmt: format the code with ruff
fmt: setup
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

#? demo: the main job. A fresh 26-validator cluster (quorum 16) settles DvP trades; prints finality latency and balances, then stops (CONSOLE=1 keeps it up, settling a trade a second, with the browser console on CONSOLE_PORT=8080 until Ctrl-C)
CONSOLE_PORT ?= 8080
demo: setup
	$(PY) -m devtools.demo --n $(NET_N) $(if $(NET_Q),--q $(NET_Q),) $(if $(CONSOLE),--console $(CONSOLE_PORT),)

# Benchmark knobs (issue: settlement latency benchmark).
RATE ?= 50
DURATION ?= 60
WARMUP ?= 10
OUT ?=
SUBMIT ?= stream
WORKLOAD ?= dvp
FAIL_RATE ?= 0.02
BENCH_ARGS = --n $(NET_N) $(if $(NET_Q),--q $(NET_Q),) --rate $(RATE) --duration $(DURATION) --warmup $(WARMUP) --submit $(SUBMIT) --workload $(WORKLOAD) --fail-rate $(FAIL_RATE) $(if $(OUT),--out $(OUT),) $(if $(BENCH_RUN_DIR),--run-dir $(BENCH_RUN_DIR),) $(if $(PIPELINE),$(if $(filter on,$(PIPELINE)),--pipeline,--no-pipeline),)

#? bench: open-loop DvP load through the SDK on a fresh cluster; JSON, table, plots (N=26 Q=16 RATE=50 DURATION=60 WARMUP=10 SUBMIT=stream|unary WORKLOAD=dvp|mixed|repo FAIL_RATE=0.02 OUT=bench-out/... BENCH_RUN_DIR=running cluster CHECK="p50<=6,p99<=20": exit 1 if missed)
.PHONY: bench bench-sweep
bench: setup
	$(PY) -m devtools.bench $(BENCH_ARGS) $(if $(CHECK),--check "$(CHECK)",)

#? bench-sweep: raise RATE by 1.5x per step (DURATION=20 each) until p99 > 1 s or trades fail; the highest sustainable rate
bench-sweep: setup
	$(PY) -m devtools.bench --sweep $(subst --duration $(DURATION),--duration $(if $(filter file,$(origin DURATION)),20,$(DURATION)),$(BENCH_ARGS))

#? outage: kill COUNT validators together under load (leader + next in index order, or PICK=random); next commit, steady block interval; DOWN_S=10 starts them again after 10 s and times their catch-up (N=26 Q=16 COUNT=10 RATE=20)
.PHONY: outage
COUNT ?= 10
PICK ?= consecutive
outage: setup
	$(PY) -m devtools.bench.outage --n $(NET_N) $(if $(NET_Q),--q $(NET_Q),) --count $(COUNT) --pick $(PICK) --rate $(RATE_OUTAGE) $(if $(DOWN_S),--down-s $(DOWN_S),) $(if $(OUT),--out $(OUT),)

RATE_OUTAGE = $(if $(filter file,$(origin RATE)),20,$(RATE))

# Chaos knobs (issue 12): N, Q and DURATION as above, but DURATION defaults to 300 here.
SEED ?= 1
CHAOS_DURATION = $(if $(filter file,$(origin DURATION)),300,$(DURATION))

#? chaos: Jepsen-style run on real processes; DvP workload, seeded faults (kill -9, SIGSTOP, restart, partitions via a proxy, leaders), then the checker (N=26 Q=16 DURATION=300 SEED=1 FAULTS=kill,pause,... OUT=chaos-out/...)
.PHONY: chaos
chaos: setup
	$(PY) -m devtools.chaos --n $(NET_N) $(if $(NET_Q),--q $(NET_Q),) --duration $(CHAOS_DURATION) --seed $(SEED) $(if $(FAULTS),--faults $(FAULTS),) $(if $(OUT),--out $(OUT),)

#? mutate: mutation testing (cosmic-ray) of the safety-critical modules; resumable, long, not in CI; build/mutation/report.md (TARGETS="core.quorum core.signing", default all)
.PHONY: mutate
TARGETS ?=
mutate: setup
	nice -n 10 $(PY) -m tests.mutation run $(foreach t,$(TARGETS),--target $(t))
	$(PY) -m tests.mutation report $(foreach t,$(TARGETS),--target $(t))

#? bench-apply: apply 1,000-trade DvP blocks to LMDB; prints trades/s and CPU us/trade
bench-apply: setup
	$(PY) -m devtools.bench.apply

#? sim: deterministic simulation of the consensus core (SEEDS=200 SEED_START=0 N=4 Q=, empty Q = classic quorum; BYZ=all or silent,forge,... Byzantine strategies, BYZ_COUNT=)
.PHONY: sim
sim: setup
	$(PY) -m tests.sim --seeds $(SEEDS) --seed-start $(or $(SEED_START),0) --n $(N) $(if $(Q),--q $(Q),) $(if $(BYZ),--byz $(BYZ),) $(if $(BYZ_COUNT),--byz-count $(BYZ_COUNT),)

# Network knobs (issue: cluster). N and Q come from the command line; the sim's N ?= 4
# default does not apply: without N a network has 26 validators, and without Q netgen
# picks 16 for 26 validators, else the classic quorum.
NET_N = $(if $(filter file,$(origin N)),26,$(N))
NET_Q = $(if $(filter file,$(origin Q)),,$(Q))
PORT_BASE ?= 7000
RUN_DIR ?= run

#? genesis: the genesis ceremony for every node in RUN_DIR: keys, self-signed TLS certs, bundles, genesis, node configs (N=26 Q=16 PORT_BASE=7000 RUN_DIR=run FORCE=1)
.PHONY: genesis
genesis: setup
	$(PY) -m devtools.netgen --out $(RUN_DIR) --n $(NET_N) $(if $(NET_Q),--q $(NET_Q),) --port-base $(PORT_BASE) $(if $(FORCE),--force,)

#? compose: docker/generated/compose.yaml for N containers plus Prometheus and Grafana (N=26 Q=16 FORCE=1)
.PHONY: compose
compose: setup
	$(PY) -m devtools.compose --n $(NET_N) $(if $(NET_Q),--q $(NET_Q),) --port-base $(PORT_BASE) --out docker/generated $(if $(FORCE),--force,)

#? k8s: Kubernetes manifests for a test cluster in K8S_DIR=k8s/generated: a ceremony run dir for pods (node-XX Services), a StatefulSet each, Secrets from its keys (N=26 Q=16 FORCE=1; real networks: docs/deploy.md)
.PHONY: k8s
K8S_DIR ?= k8s/generated
k8s: setup
	$(PY) -m devtools.netgen --containers --out $(K8S_DIR)/run --n $(NET_N) $(if $(NET_Q),--q $(NET_Q),) --port-base $(PORT_BASE) $(if $(FORCE),--force,)
	$(PY) -m devtools.k8s --from-run-dir $(K8S_DIR)/run --out $(K8S_DIR)

#? cluster: start the validators of RUN_DIR in the background (generates it first if missing; N=26 Q=16 PORT_BASE=7000)
.PHONY: cluster status stop kill-node start-node clean-cluster
cluster: setup
	@test -f $(RUN_DIR)/network.json || $(PY) -m devtools.netgen --out $(RUN_DIR) --n $(NET_N) $(if $(NET_Q),--q $(NET_Q),) --port-base $(PORT_BASE)
	$(PY) -m devtools.cluster --run-dir $(RUN_DIR) start

#? status: ledger status with pids: table of every node (height, view, leader, peers, root), JSON=1 for schema ledger.status/1; fails (the command exits 1, make 2) if any is down, halted or they disagree
status: setup
	$(PY) -m devtools.cluster --run-dir $(RUN_DIR) status $(if $(JSON),--json,)

#? stop: stop every node of RUN_DIR (SIGTERM, then SIGKILL), leaving no process behind
stop: setup
	$(PY) -m devtools.cluster --run-dir $(RUN_DIR) stop

#? kill-node: crash one validator with SIGKILL (I=3)
kill-node: setup
	$(PY) -m devtools.cluster --run-dir $(RUN_DIR) kill-node $(I)

#? start-node: restart one validator and wait until it is connected to every peer that runs (I=3)
start-node: setup
	$(PY) -m devtools.cluster --run-dir $(RUN_DIR) start-node $(I)

#? clean-cluster: stop the nodes and delete RUN_DIR (genesis, keys, LMDB data, logs)
clean-cluster: setup
	@if [ -f $(RUN_DIR)/network.json ]; then $(PY) -m devtools.cluster --run-dir $(RUN_DIR) clean; else rm -rf $(RUN_DIR); fi

#? clean: remove the virtualenv, generated code and caches (keeps nothing generated)
clean:
	rm -rf $(VENV) node/wire/*_pb2*.py node/wire/*_pb2*.pyi .mypy_cache .ruff_cache .pytest_cache .hypothesis

.PHONY: help setup test test-fast lint fmt demo bench-apply clean
