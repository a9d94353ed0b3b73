# keras_scan: `make demo` runs the main job, `make test` passes the tests.
# Both create the virtual environment .venv on first use.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DEMO_DIR ?= demo_out
export TF_CPP_MIN_LOG_LEVEL ?= 3

.PHONY: venv test demo lint bench bench-gpu clean

BENCH_PROFILE ?= cpu

$(BIN)/keras-scan: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[dev]"
	@if [ -f tflite/setup.cfg ]; then $(BIN)/python -m pip install -q -e ./tflite; fi
	@touch $@

venv: $(BIN)/keras-scan

test: venv
	$(BIN)/python -m pytest -q -ra --durations=30
	@if [ -f android_demo/scripts/test_core.sh ]; then bash android_demo/scripts/test_core.sh; fi

lint: venv
	$(BIN)/ruff check keras_scan tests tflite examples benchmarks
	$(BIN)/ruff format --check keras_scan tests tflite examples benchmarks

demo: venv
	$(BIN)/python examples/demo.py --out $(DEMO_DIR)

bench: venv
	$(BIN)/python benchmarks/run.py --profile $(BENCH_PROFILE)

bench-gpu:
	KERAS_BACKEND=jax $(PYTHON) benchmarks/run.py --profile gpu

clean:
	rm -rf $(DEMO_DIR) .pytest_cache
