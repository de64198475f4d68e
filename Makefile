# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export DJANGO_SETTINGS_MODULE := aurora_billing.settings

.PHONY: install demo test lint bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	./scripts/system-deps
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

install: $(VENV)/.installed

# Local console with demo data: SQLite, files under var/, console email, tasks in-process,
# Alipay and PayPal through their local emulators (payments/emulators; SITE_URL must be
# where runserver listens, since the console calls the PayPal emulator's API there).
demo: install
	DEBUG=1 PAYMENT_EMULATORS=1 $(BIN)/python manage.py migrate --no-input -v0
	DEBUG=1 PAYMENT_EMULATORS=1 $(BIN)/python manage.py seed_demo
	DEBUG=1 PAYMENT_EMULATORS=1 SITE_URL=http://127.0.0.1:8000 $(BIN)/python manage.py runserver 127.0.0.1:8000

# The whole suite (SQLite unless DATABASE_URL points at PostgreSQL), then lint.
test: install
	$(BIN)/pytest
	$(BIN)/ruff check .

lint: install
	$(BIN)/ruff check .

bench: install
	$(BIN)/python -m benchmarks

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
