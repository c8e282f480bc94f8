# Two commands on a fresh machine: `make run` (CSMS on the embedded SQLite default) and `make test`.
UV ?= $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
PY := .venv/bin/python

.PHONY: install run test lint types conformance-deps bench bench-reaction bench-scheduling

.venv/.installed: pyproject.toml uv.lock
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv==0.13.9 \
		|| python3 -m pip install --quiet --user --break-system-packages uv==0.13.9
	$(UV) sync --frozen
	@touch $@

install: .venv/.installed

run: install
	$(PY) -m csms serve --config config/csms.toml

conformance-deps:
	@if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/conformance --no-audit --no-fund --silent; fi

lint: install
	$(PY) -m ruff check csms simulator tests benchmarks
	$(PY) -m ruff format --check csms simulator tests benchmarks

types: install
	$(PY) -m mypy

# The smart-fleet day runs simulated time at 600x real time, so its settling windows are real reaction time: it runs
# in a process of its own (800 tests into the suite, with their heap and a PostgreSQL cluster, it missed them).
test: install conformance-deps lint types
	PYTHONASYNCIODEBUG=1 $(PY) -m pytest -q --ignore=tests/integration/test_smart_fleet.py
	PYTHONASYNCIODEBUG=1 $(PY) -m pytest -q tests/integration/test_smart_fleet.py

bench: install
	$(PY) -m benchmarks.run_core

# Scheduler quality (vs baselines and the offline optimum) and speed; rewrites its BENCHMARKS.md section and
# docs/img/scheduling-*.png. `$(PY) -m benchmarks.run_scheduling --quick` is the seconds-long smoke run.
bench-scheduling: install
	$(PY) -m benchmarks.run_scheduling

# Reaction to a limit cut, end to end (real server, 1,000 simulated stations); rewrites its BENCHMARKS.md section.
# `$(PY) -m benchmarks.run_reaction --quick` is the 100-station smoke run.
bench-reaction: install
	$(PY) -m benchmarks.run_reaction
