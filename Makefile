# Two commands for a stranger: `make demo` and `make test`. Everything else is a convenience.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cat requirements.txt | cksum | cut -d' ' -f1)

.PHONY: demo test install lint check serve bench clean

$(STAMP): requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "Python 3.11 is required (set PYTHON=...)")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements.txt
	rm -f $(VENV)/.installed-* && touch $@

install: $(STAMP)

# SQLite file db.sqlite3, the demo arena, the site on http://127.0.0.1:8000 (admin: admin / admin).
demo: install
	DEBUG=1 $(PY) manage.py migrate --noinput
	DEBUG=1 $(PY) manage.py seed_demo
	DEBUG=1 $(PY) manage.py seed_demo_judge
	DEBUG=1 ARENA_MATCHMAKING_POLICY=active $(PY) manage.py runserver 127.0.0.1:8000

# The whole suite: on Postgres when DATABASE_URL is set, else SQLite (Postgres-only tests skipped, and said so).
test: install
	$(PY) -m pytest

# Production: gunicorn + uvicorn workers, WhiteNoise, DEBUG off, the tasks worker beside it (README: Running in
# production). Needs SECRET_KEY and DATABASE_URL; options after SERVE_ARGS=, e.g. SERVE_ARGS="--bind 0.0.0.0:8000".
serve: install
	$(PY) -m config.serve $(SERVE_ARGS)

lint: install
	$(PY) -m ruff check .
	$(PY) -m mypy

check: install
	DEBUG=1 $(PY) manage.py check
	DEBUG=1 $(PY) manage.py makemigrations --check --dry-run

clean:
	rm -rf $(VENV) db.sqlite3 .pytest_cache .ruff_cache
