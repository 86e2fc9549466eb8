# Two commands do all set-up: `make demo` runs the exporter on the simulated stack,
# `make test` runs the linters and every test. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test coverage ahead lint unit integration bench soak clean lock

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python >= 3.11 is required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/.installed
	$(BIN)/quantops-exporter demo

lint: $(BIN)/.installed
	$(BIN)/ruff check quantops_exporter tests benchmarks
	$(BIN)/ruff format --check quantops_exporter tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

# Every test on three workers (-n 3 --dist loadgroup), one more than the machine's two cores:
# a third of the suite's wall time is spent waiting (alert `for:` windows, a compressed week),
# and a third worker fills it (quiet 2-core machine: 9 min 31 s on two workers, 6 min 50 s on
# three with promtool at GOGC=400). Each xdist_group stays on one worker (the alerting tests;
# the week and stacks replays, which start a dozen daemons each and share one run per module);
# every other test goes wherever a worker is free. The slowest tests are listed at the end.
# `make coverage` is the same run with branch coverage of the package, subprocesses included
# (about 40% slower on the Python-heavy tests).
PYTEST_ALL := $(BIN)/python -m pytest -n 3 --dist loadgroup --durations=15
test: lint
	$(PYTEST_ALL)

coverage: lint
	$(PYTEST_ALL) --cov --cov-report=term

# Every test whose moments come from today (each module importing tests/moments.py), with the
# whole test process DAYS days ahead under libfaketime: `make ahead DAYS=21` (from early
# December, the week after Christmas), `DAYS=95` (a week New York changes its clocks). ~2 min.
DAYS ?= 21
LIBFAKETIME ?= /usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1
AHEAD = $(shell grep -rl --include='test_*.py' 'tests.moments' tests)
ahead: $(BIN)/.installed
	LD_PRELOAD=$(LIBFAKETIME) FAKETIME=+$(DAYS)d $(BIN)/python -m pytest -n 3 --dist loadgroup $(AHEAD)

unit: $(BIN)/.installed
	$(BIN)/python -m pytest tests/unit

integration: $(BIN)/.installed
	$(BIN)/python -m pytest tests/integration

# instruments.py (~6 min: quantops-exporter beside redis_exporter at 100 / 1,000 / 10,000
# instruments; needs wrk, and prometheus-redis-exporter for its columns), then scrape.py
# (~4 min). BENCH_ARGS go to instruments.py; SCRAPE=0 skips scrape.py.
SCRAPE ?= 1
bench: $(BIN)/.installed
	$(BIN)/python benchmarks/instruments.py $(BENCH_ARGS)
	if [ "$(SCRAPE)" != 0 ]; then $(BIN)/python benchmarks/scrape.py; fi

soak: $(BIN)/.installed
	$(BIN)/python benchmarks/soak.py --minutes 5

# The container's pinned, hashed dependencies, compiled from pyproject.toml (runtime + demo) for
# every platform (markers kept). Existing pins are kept unless pyproject.toml needs otherwise;
# tests/deploy/test_image_install.py fails when this file is stale.
LOCK_COMPILE = $(BIN)/uv pip compile pyproject.toml --extra demo --universal \
	--python-version 3.11 --generate-hashes --no-annotate --quiet \
	--custom-compile-command "make lock"
lock: $(BIN)/.installed
	$(LOCK_COMPILE) -o deploy/requirements.lock

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis
