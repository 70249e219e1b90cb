# casstore: `make demo` runs the main job on the default store, `make test` runs the suite.
# Both set everything up first (a virtualenv in .venv, system packages the tests need);
# the demo installs only what it needs (casstore and its `demo` extra), not the test tools.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEMO_STAMP := $(VENV)/.installed-demo
# every pip install below (and in the venv's own builds) honours these pins
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt

.PHONY: setup sysdeps test check cov lint typecheck demo bench clean

# The venv's own pip config applies constraints.txt to every pip command run with its pip,
# so `pip install '.[torch]'` there takes the CPU torch the tests use (pip reads no config from
# the project directory, and pyproject.toml cannot name an index: see README.md, PyTorch).
$(VENV)/pip.conf: constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	printf '# written by make (see Makefile): the project pins, for every pip command of this venv\n[global]\nconstraint = %s\n' '$(CURDIR)/constraints.txt' > $@

$(STAMP): pyproject.toml constraints.txt $(VENV)/pip.conf
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

setup: $(STAMP)

# Servers and tools the tests start for real (git daemon, http-backend, sshd ...).
sysdeps:
	bash .ci/sysdeps.sh

lint: setup
	$(PY) -m ruff check casstore tests $(wildcard benchmarks/*.py)

typecheck: setup
	$(PY) -m mypy

test: setup sysdeps lint typecheck
	$(PY) -m pytest -q -n 2 -p no:cacheprovider

# The fast tier (docs/testing.md): ruff, mypy and the unit tests, serially, with no server,
# browser or heavy framework, so no system packages; under a minute.  `make test` stays the full run.
check: setup lint typecheck
	$(PY) -m pytest -q -p no:cacheprovider -m unit --durations=10

# The whole suite under coverage, then line coverage per package of casstore/ (not gated);
# the casstore processes the tests start (the CLI, cas serve) are measured too (patch = subprocess).
cov: setup sysdeps
	$(PY) -m pytest -q -n 2 -p no:cacheprovider --cov=casstore --cov-report=json:coverage.json --cov-report=
	$(PY) .ci/coverage_by_package.py coverage.json

$(DEMO_STAMP): pyproject.toml constraints.txt $(VENV)/pip.conf
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[demo]'
	touch $(DEMO_STAMP)

# afterwards `cas` is .venv/bin/cas (or `source .venv/bin/activate`): see README.md
demo: $(DEMO_STAMP)
	$(PY) -m casstore.demo

# Compares casstore with modelstore (installed from PyPI into benchmarks/.venv-modelstore), and with
# restic, borg and DVC (bench_peers.py: issue 26's rows with W2 of 256 MiB, a bf16 safetensors file, W2 over
# git://, http and ssh, 1,000 small models, targets 1-5 met or not, the chart docs/benchmarks-peers.png;
# BENCH_PEERS_ARGS="--size 1024" for the issue's W2, "--small 100" for a shorter run, "--quick" to check that it runs).
bench: setup sysdeps
	$(PY) -m pip install -q --disable-pip-version-check -e '.[bench]'
	command -v zstd >/dev/null || (apt-get update -qq && apt-get install -y -qq zstd >/dev/null)
	# borg (benchmarks/.venv-borg) builds from source: its headers
	dpkg -s pkg-config libacl1-dev libssl-dev liblz4-dev libzstd-dev libxxhash-dev >/dev/null 2>&1 || \
		(apt-get update -qq && apt-get install -y -qq pkg-config libacl1-dev libssl-dev liblz4-dev libzstd-dev libxxhash-dev >/dev/null)
	$(PY) benchmarks/bench.py $(BENCH_ARGS)
	$(PY) benchmarks/bench_peers.py $(BENCH_PEERS_ARGS)
	$(PY) benchmarks/bench_transfer.py $(BENCH_TRANSFER_ARGS)
	$(PY) benchmarks/bench_log.py
	$(PY) benchmarks/bench_serve.py
	$(PY) benchmarks/bench_codec.py
	$(PY) benchmarks/bench_torch_dedup.py
	$(PY) benchmarks/bench_scale.py
	$(PY) benchmarks/bench_bucket.py
	$(PY) benchmarks/bench_bucket_scale.py
	$(PY) benchmarks/bench_open_file.py
	$(PY) benchmarks/bench_signing.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage .coverage.* coverage.json
