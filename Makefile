# The two commands of the README: `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
export DJANGO_SETTINGS_MODULE := aurora_billing.settings

.PHONY: install messages demo test lint bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Exact versions with hashes from the lock file, then the project itself
# (no dependency resolution, no download of a build backend).
$(VENV)/.installed: pyproject.toml requirements-dev.txt | $(BIN)/python
	./scripts/system-deps
	$(BIN)/pip install -q --require-hashes -r requirements-dev.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $@

install: $(VENV)/.installed messages

# The translation catalogs (locale/, <app>/locale/): .po committed, .mo
# compiled here (docs/i18n.md). msgfmt comes from scripts/system-deps.
messages: | $(VENV)/.installed
	DEBUG=1 $(BIN)/python manage.py compilemessages -v0 --ignore=$(VENV) --ignore=var

# Local console with demo data: SQLite, files under var/, console email, tasks in-process,
# Alipay and PayPal through their local emulators (payments/emulators; SITE_URL must be
# where runserver listens, since the console calls the PayPal emulator's API there).
demo: install
	DEBUG=1 PAYMENT_EMULATORS=1 $(BIN)/python manage.py migrate --no-input -v0
	DEBUG=1 PAYMENT_EMULATORS=1 $(BIN)/python manage.py seed_demo
	DEBUG=1 PAYMENT_EMULATORS=1 SITE_URL=http://127.0.0.1:8000 $(BIN)/python manage.py runserver 127.0.0.1:8000

# The whole suite (SQLite unless DATABASE_URL points at PostgreSQL), then lint
# and the layers contract (pyproject.toml, [tool.importlinter]).
test: install
	$(BIN)/pytest
	$(BIN)/ruff check .
	$(BIN)/lint-imports

lint: install
	$(BIN)/ruff check .
	$(BIN)/lint-imports

bench: install
	$(BIN)/python -m benchmarks

# Re-resolve the lock files from pyproject.toml (newest versions in range).
# Review the diff, run `make test`, commit both files. docs/operations.md.
LOCK := var/lock-tools/bin/uv pip compile --quiet --generate-hashes --python-version 3.11 --universal
lock:
	test -x var/lock-tools/bin/uv || ($(PYTHON) -m venv var/lock-tools && var/lock-tools/bin/pip install -q uv)
	$(LOCK) pyproject.toml -o requirements.txt
	$(LOCK) --extra dev pyproject.toml requirements-build.in -o requirements-dev.txt

clean:
	rm -rf $(VENV) var .pytest_cache .ruff_cache
