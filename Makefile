# NetRoom: `make run` starts everything on a fresh machine; `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: run test install locales catalogue lint chromium bench clean

$(INSTALLED): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --disable-pip-version-check -q -e '.[dev]'
	touch $(INSTALLED)

install: $(INSTALLED)

# Compiled message catalogues (.mo) are build output, not sources.
locales: install
	$(BIN)/pybabel compile -d locales -D messages --use-fuzzy -f

# After changing user-visible text: refresh the template and the ru/en catalogues, then translate.
catalogue: install
	$(BIN)/pybabel extract -F babel.cfg -k N_ -k __ -k lazy_gettext --omit-header --sort-output -o locales/messages.pot .
	$(BIN)/pybabel update -i locales/messages.pot -d locales -D messages --width 100 --no-fuzzy-matching

run: install locales
	$(BIN)/netroom run

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports
	$(BIN)/bandit -q -r bot core db netroom webapp worker sandbox -c pyproject.toml
	$(BIN)/hadolint Dockerfile

# Browser tests drive Debian's Chromium.
chromium:
	@test -x /usr/bin/chromium || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Most tests wait on real processes and servers: three workers, each with its own database and
# Redis database, a test module each at a time.
test: install locales chromium lint
	$(BIN)/python -m pytest -q -n 3 --dist loadfile --durations=30

# Every benchmark, each printing its figures beside its baseline and its bar.
bench: install locales
	$(BIN)/python -m bench.initdata
	$(BIN)/python -m bench.sse
	$(BIN)/python -m bench.bot_pipeline
	$(BIN)/python -m bench.turns
	$(BIN)/python -m bench.ledger
	$(BIN)/python -m bench.rag
	$(BIN)/python -m bench.export
	$(BIN)/python -m bench.retention
	$(BIN)/python -m bench.faults
	$(BIN)/python -m bench.memory

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
