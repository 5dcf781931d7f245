# shopguard: two commands on a fresh machine.
#   make run   set up, then run the job on the built-in simulator (no broker)
#   make test  set up, then run the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: run test setup bench clean prometheus

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: setup
	$(BIN)/shopguard run $(ARGS)

test: setup
	$(BIN)/pytest $(ARGS)

clean:
	rm -rf $(VENV) out .pytest_cache

# make bench  set up, then benchmark the job (bench/README.md; results in BENCHMARKS.md)
bench: setup
	$(BIN)/python bench/bench.py $(ARGS)

# make prometheus  Debian's Prometheus on 127.0.0.1:9090 scraping a local `make run` (metrics port 9464)
prometheus:
	scripts/prometheus_local.sh $(ARGS)
