# shopguard: two commands on a fresh machine (Debian 12 with Python 3.11 and make).
#   make run   set up, then run the job on the built-in simulator (no broker)
#   make test  set up, then run the whole test suite
# Both install the system packages they need when missing (as root; otherwise
# they print the one apt-get command to run): scripts/system-packages.sh.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

# What `make run` needs: a Python that can make a virtualenv.
RUN_PACKAGES := python3-venv
# What the suite drives for real:
#   prometheus, prometheus-alertmanager: promtool/amtool rule tests, a real Prometheus and Alertmanager
#   openjdk-17-jre-headless, maven: a real Kafka broker from Maven Central jars
#   docker-compose: `config` validates docker-compose.yml (no engine needed)
#   chromium, fonts-dejavu-core: browser tests (Playwright drives Debian's Chromium)
TEST_PACKAGES := $(RUN_PACKAGES) prometheus prometheus-alertmanager openjdk-17-jre-headless maven docker-compose \
	chromium fonts-dejavu-core

.PHONY: run test setup system-packages-run system-packages-test bench clean prometheus

setup: system-packages-run $(VENV)/.installed

system-packages-run:
	@scripts/system-packages.sh $(RUN_PACKAGES)

system-packages-test:
	@scripts/system-packages.sh $(TEST_PACKAGES)

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: setup
	$(BIN)/shopguard run $(ARGS)

test: system-packages-test setup
	$(BIN)/pytest $(ARGS)

clean:
	rm -rf $(VENV) out .pytest_cache

# make bench  set up, then benchmark the job (bench/README.md; results in BENCHMARKS.md)
bench: setup
	$(BIN)/python bench/bench.py $(ARGS)

# make prometheus [ARGS="PORT PROCESSES"]  Debian's Prometheus on 127.0.0.1:9090 scraping a local `make run`
# (metrics port 9464; with `-p N` give N so that every process is scraped)
prometheus: system-packages-test
	scripts/prometheus_local.sh $(ARGS)
