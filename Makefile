# llmct — common tasks. Every target does the set-up it needs on a fresh machine.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
MODEL ?= default
SCENARIO ?= stimuli/scenarios/rollercoaster.yaml
RUN := $(UV) run

.PHONY: setup test test-fast scan layers monitor bench lint clean-cache help

help:  ## list targets
	@grep -E '^[a-zA-Z_-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup:  ## install uv if missing, then the locked environment (uv sync)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen

test: setup  ## the whole test suite (unit + embedded-model integration + browser)
	$(RUN) pytest

test-fast: setup  ## unit tests only (tiny models, no embedded model)
	$(RUN) pytest -m "not integration and not browser"

scan: setup  ## CT-scan the rollercoaster scenario on MODEL (default: embedded SmolLM2)
	$(RUN) llmct scan $(SCENARIO) $(if $(filter-out default,$(MODEL)),--model $(MODEL))

layers: setup  ## print the layer map of MODEL
	$(RUN) llmct layers $(MODEL)

monitor: setup  ## live emotion readout while generating the scenario's assistant turns
	$(RUN) llmct monitor $(SCENARIO) $(if $(filter-out default,$(MODEL)),--model $(MODEL))

bench: setup  ## speed/memory benchmarks (ratios against a baseline in the same run)
	$(RUN) python benchmarks/bench_capture.py

lint: setup
	$(RUN) ruff check .
