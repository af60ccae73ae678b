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

test-tensorflow: $(STAMP)
	$(PY) -m pytest tests -q

# The layer, ops and loss tests again on Keras's JAX backend, and the export from JAX.
test-jax: $(STAMP)
	KERAS_BACKEND=jax $(PY) -m pytest -q tests/test_ops.py tests/test_mtsa.py \
		tests/test_source2token_pooling.py tests/test_encoder_block.py tests/test_blockwise.py \
		tests/test_losses.py tests/test_fused.py tests/test_pretrained_embedding.py \
		tests/test_backends.py

# The house style (pyproject.toml): ruff's checks and formatting at 100 columns.
lint: $(STAMP)
	$(VENV)/bin/ruff check --no-cache .
	$(VENV)/bin/ruff format --check --no-cache .

clean:
	rm -rf $(VENV) build *.egg-info
