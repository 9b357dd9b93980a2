# machi: `make demo` runs the demo, `make test` runs the whole suite.
# Both set up what is missing first: Debian's mosquitto and influxdb, and a virtualenv.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_ARGS ?=
PYTEST_ARGS ?=

.PHONY: setup system-deps venv demo test test-faults lint typecheck bench clean

setup: system-deps venv

# Servers come from the distribution; they are started by machi itself on loopback
# ports, so the packages' own system services are left stopped.
system-deps:
	@if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then :; else NEED=1; fi; \
	if command -v influxd >/dev/null 2>&1; then :; else NEED=1; fi; \
	if [ -n "$$NEED" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "mosquitto/influxdb missing: run 'sudo make setup'"; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends mosquitto influxdb; \
	  (service mosquitto stop; service influxdb stop) >/dev/null 2>&1 || true; \
	fi

$(BIN)/machi: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/machi

demo: setup
	$(BIN)/machi demo $(DEMO_ARGS)

# pytest exits 5 when it collected no tests; that is a failure here, never a pass.
test: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test-faults: setup
	$(BIN)/pytest -m faults $(PYTEST_ARGS)

lint:
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

bench: setup
	$(BIN)/machi bench ingest

clean:
	rm -rf .machi .pytest_cache .mypy_cache .ruff_cache
