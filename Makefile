# llmct — common tasks. Every target does the set-up it needs on a fresh machine.
SHELL := /bin/bash
UV := $(shell command -v uv 2>/dev/null || echo "python3 -m uv")
MODEL ?= default
SCENARIO ?= stimuli/scenarios/rollercoaster.yaml
RUN := $(UV) run

.PHONY: setup test test-fast browser scan layers monitor bench lint clean-cache help

help:  ## list targets
	@grep -E '^[a-zA-Z_-]+:.*##' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-14s %s\n", $$1, $$2}'

setup:  ## install uv if missing, then the locked environment (uv sync)
	@command -v uv >/dev/null 2>&1 || python3 -m uv --version >/dev/null 2>&1 || python3 -m pip install --quiet uv
	$(UV) sync --frozen

CHROMIUM_BIN = command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1
BROWSER_MISSING = echo; echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"; \
	echo "!! THE BROWSER TEST DID NOT RUN: headless chromium is not installed, so the"; \
	echo "!! HTML report was not checked in a browser. Enable it with 'sudo make browser'"; \
	echo "!! (Debian/Ubuntu) or install chromium yourself, then run 'make test' again."; \
	echo "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"

test: setup  ## the whole test suite (unit + embedded-model integration + browser)
	@if ! { $(CHROMIUM_BIN); } && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory browser || true; fi
	@status=0; $(RUN) pytest || status=$$?; \
	if ! { $(CHROMIUM_BIN); }; then $(BROWSER_MISSING); fi; exit $$status

browser:  ## install Debian's chromium for the report's browser test (as root, with apt)
	@if { $(CHROMIUM_BIN); }; then echo "chromium already installed: $$(command -v chromium || command -v chromium-browser)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	  && echo "installed $$(command -v chromium)"; \
	else echo "make browser: needs root and apt-get (Debian/Ubuntu): run 'sudo make browser', or install chromium yourself" >&2; exit 1; fi

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

lint: setup  ## ruff, mypy (src/, --check-untyped-defs), and no block of 6+ similar lines repeated in src/ or between experiments
	$(RUN) ruff check .
	$(RUN) mypy
	$(RUN) pylint --disable=all --enable=duplicate-code --min-similarity-lines=6 --score=n \
	  src/llmct experiments/*/run.py experiments/*/headline.py analysis/*.py visualization/figures/*.py scripts/*.py

# -- reproduction, figures, cloud GPUs (scripts/cloud.sh reads .env.session; docs/cloud-gpu.md) --
EXP ?=
ARGS ?=
GPUS ?= 1
FORCE ?=
KEEP_GOING ?=
CLOUD := bash scripts/cloud.sh

.PHONY: summary figures reproduce reproduce-all determinism cloud-setup cloud-sync cloud-run cloud-status \
	cloud-logs cloud-fetch cloud-down

summary: setup  ## cross-model table from every outputs/<slug>/ -> experiments/12_summary/outputs/
	$(RUN) python experiments/12_summary/run.py --overwrite

figures: setup  ## every publication figure, PNG + SVG, from the CSVs -> visualization/figures/output/
	$(RUN) python visualization/figures/run_all.py

reproduce: setup  ## experiments 00..12 on MODEL, then figures (done ones skipped; FORCE=1, KEEP_GOING=1)
	$(RUN) python scripts/reproduce.py --model $(MODEL) $(if $(FORCE),--force) $(if $(KEEP_GOING),--keep-going); \
	status=$$?; $(RUN) python visualization/figures/run_all.py; exit $$status

EMBEDDED_MODELS ?= default gemma3-270m

reproduce-all: setup  ## make reproduce on both embedded models (SmolLM2, then Gemma 3 270M), then figures
	@status=0; for m in $(EMBEDDED_MODELS); do \
	  $(RUN) python scripts/reproduce.py --model $$m $(if $(FORCE),--force) $(if $(KEEP_GOING),--keep-going) || status=$$?; \
	done; $(RUN) python visualization/figures/run_all.py; exit $$status

determinism: setup  ## 02_probes (stored activations) + 00_ct_scan twice; fails on any CSV difference
	$(RUN) python scripts/check_determinism.py --model $(MODEL)

cloud-setup:  ## copy the code to the GPU machine of .env.session, install uv, uv sync --frozen
	$(CLOUD) setup

cloud-sync:  ## rsync the code up (no outputs, .venv or activations)
	$(CLOUD) sync

cloud-run:  ## start EXP=NN_name with MODEL remotely in tmux (ARGS='...', GPUS=n: accelerate launch over n GPUs)
	@test -n "$(EXP)" || { echo "usage: make cloud-run EXP=01_extract MODEL=<hf id> [ARGS='...'] [GPUS=n]"; exit 2; }
	ARGS="$(ARGS)" GPUS=$(GPUS) $(CLOUD) run $(EXP) $(MODEL)

cloud-status:  ## GPUs, running sessions, last line of each recent log
	$(CLOUD) status

cloud-logs:  ## tail the newest remote log (EXP=NN_name to choose, FOLLOW=1 to follow)
	$(CLOUD) logs $(EXP)

cloud-fetch:  ## copy remote outputs to outputs/cloud/<stamp>/, then into experiments/ (--update)
	$(CLOUD) fetch

cloud-down:  ## run SHUTDOWN_CMD of .env.session (asks first) -- fetch before!
	$(CLOUD) down
