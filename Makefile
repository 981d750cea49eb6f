# Two commands do all the set-up on a fresh machine (see README):
#   make demo   — install, load the Laiwu demo year into a fresh SQLite file and serve it over HTTP
#   make test   — install, start PostgreSQL if it is down, run lint, types and the whole test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DB ?= var/demo.db

$(BIN)/ledger: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

.PHONY: install demo test lint postgres specs
install: $(BIN)/ledger

demo: install
	rm -f $(DEMO_DB) $(DEMO_DB)-wal $(DEMO_DB)-shm
	mkdir -p var
	LEDGER_DATABASE_URL=sqlite:///$(DEMO_DB) LEDGER_KEY_FILE=var/ledger.key LEDGER_SIGNING_KEY_FILE=var/ledger-signing.key \
		$(BIN)/ledger init
	LEDGER_DATABASE_URL=sqlite:///$(DEMO_DB) LEDGER_KEY_FILE=var/ledger.key LEDGER_SIGNING_KEY_FILE=var/ledger-signing.key \
		$(BIN)/ledger demo --serve

postgres:
	@pg_isready -q -h 127.0.0.1 -p 5432 || pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql) main start
	@for i in $$(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && exit 0; sleep 1; done; echo "PostgreSQL did not start" >&2; exit 1

lint: install
	$(BIN)/ruff check .
	$(BIN)/mypy domain projections api audit store

test: install postgres lint
	$(BIN)/pytest -n 2 -q

# The acceptance specs as a readable page (reports/specs.md); not under xdist, whose workers
# leave pytest-bdd's cucumber JSON empty. The page is written even when a spec fails.
specs: install postgres
	mkdir -p reports
	$(BIN)/pytest tests/features --cucumberjson=reports/cucumber.json ; \
		$(BIN)/python features/report.py reports/cucumber.json > reports/specs.md
	@echo "wrote reports/specs.md"
