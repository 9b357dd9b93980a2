# machi: `make demo` runs the demo, `make test` runs the whole suite.
# Both set up what is missing first: Debian's packages (APT_PACKAGES) and a virtualenv.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
DEMO_ARGS ?=
PYTEST_ARGS ?=
# Servers the tests and the demo start on loopback, the browser for the page tests, and
# node/npm for axe-core (the accessibility checker injected into pages).
APT_PACKAGES := mosquitto influxdb postgresql chromium chromium-driver fonts-noto-cjk

.PHONY: setup system-deps venv demo test test-faults lint typecheck bench clean

setup: system-deps venv

# Servers come from the distribution; they are started by machi itself on loopback
# ports, so the packages' own system services are left stopped.
system-deps:
	@NEED=; \
	for b in mosquitto:/usr/sbin/mosquitto influxd:/usr/bin/influxd chromium:/usr/bin/chromium \
	         initdb:/usr/lib/postgresql/15/bin/initdb; do \
	  command -v $${b%%:*} >/dev/null 2>&1 || [ -x $${b#*:} ] || ls /usr/lib/postgresql/*/bin/$${b%%:*} >/dev/null 2>&1 || NEED=1; \
	done; \
	if [ -n "$$NEED" ]; then \
	  if [ "$$(id -u)" != 0 ]; then echo "system packages missing: run 'sudo make setup'"; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -q && apt-get install -y -q --no-install-recommends $(APT_PACKAGES); \
	  (service mosquitto stop; service influxdb stop; service postgresql stop) >/dev/null 2>&1 || true; \
	fi; \
	if ! command -v npm >/dev/null 2>&1; then \
	  if [ "$$(id -u)" != 0 ]; then echo "npm missing: run 'sudo make setup'"; exit 1; fi; \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends nodejs npm; \
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
