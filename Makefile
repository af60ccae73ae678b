# The two quick-start commands: `make demo` (the main job) and `make test` (the test suite).
# Each creates .venv on first use and installs the package with what it needs.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-tensorflow test-jax lint install clean

$(STAMP): setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[test,examples]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

test: test-tensorflow test-jax

# On every core (pytest-xdist): most tests wait on Python, tracing or a child process, not on
# the other core. loadgroup keeps the tests of one xdist_group (a shared fixture) on one worker.
XDIST := -n auto --dist loadgroup

test-tensorflow: $(STAMP)
	$(PY) -m pytest tests -q $(XDIST)

# The tests marked `backends` (ops, layers, losses, the export from JAX) again on Keras's JAX
# backend.
test-jax: $(STAMP)
	KERAS_BACKEND=jax $(PY) -m pytest tests -q -m backends $(XDIST)

# The house style (pyproject.toml): ruff's checks and formatting at 100 columns.
lint: $(STAMP)
	$(VENV)/bin/ruff check --no-cache .
	$(VENV)/bin/ruff format --check --no-cache .

clean:
	rm -rf $(VENV) build *.egg-info
