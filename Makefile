# cmedu: every target sets up .venv (once) and then does its job.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.cmedu-installed
# Machines that keep torch 2.14.1 / torchvision 0.29.1 on local disk cap pip there
# (/etc/xdg/pip); pin that pair on them. Elsewhere pyproject.toml's ranges apply.
TORCH_PIN := $(shell test -f /etc/xdg/pip/constraints.txt && echo "torch==2.14.1 torchvision==0.29.1")

.PHONY: setup lab demo test notebooks bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(TORCH_PIN),$(BIN)/python -m pip install -q $(TORCH_PIN))
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

# Jupyter refuses to run as root unless told to (containers, cloud machines).
ALLOW_ROOT := $(shell test "$$(id -u)" = 0 && echo --allow-root)

lab: setup  ## the main job: JupyterLab on the course
	$(BIN)/jupyter lab notebooks/ $(ALLOW_ROOT)

demo: setup  ## headless tour: CD and CT on a 2D toy, figure and table in outputs/
	$(BIN)/python -m cmedu.demo --out outputs

test: setup  ## lint, then the whole test suite (notebooks under nbval in fast mode)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	CMEDU_FAST=1 $(BIN)/python -m pytest

notebooks: setup  ## re-run every notebook in full mode and store its outputs
	$(BIN)/python -m cmedu.notebooks --execute notebooks

bench: setup  ## benchmarks (minutes to an hour; results go to benchmarks/results/)
	$(BIN)/python benchmarks/toy_benchmark.py

clean:
	rm -rf outputs .pytest_cache .ruff_cache
