# cmedu: every target sets up .venv (once) and then does its job.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.cmedu-installed
NBGRADER_SERVER := formgrader validate_assignment assignment_list course_list
# Machines that keep torch 2.14.1 / torchvision 0.29.1 on local disk cap pip there
# (/etc/xdg/pip); pin that pair on them. Elsewhere pyproject.toml's ranges apply.
TORCH_PIN := $(shell test -f /etc/xdg/pip/constraints.txt && echo "torch==2.14.1 torchvision==0.29.1")

.PHONY: setup lab demo exercises test e2e docs notebooks bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(if $(TORCH_PIN),$(BIN)/python -m pip install -q $(TORCH_PIN))
	$(BIN)/python -m pip install -q -e ".[test]"
	# nbgrader is here for `make exercises` only: its instructor panels stay out of the
	# learners' JupyterLab (re-enable with `jupyter labextension enable @jupyter/nbgrader`).
	$(BIN)/jupyter labextension disable --level=sys_prefix @jupyter/nbgrader >/dev/null 2>&1
	for e in $(NBGRADER_SERVER); do \
	    $(BIN)/jupyter server extension disable --sys-prefix nbgrader.server_extensions.$$e \
	        >/dev/null 2>&1; done
	touch $(STAMP)

setup: $(STAMP)

# Jupyter refuses to run as root unless told to (containers, cloud machines).
ALLOW_ROOT := $(shell test "$$(id -u)" = 0 && echo --allow-root)

# A notebook path makes JupyterLab open it at start, with its folder (notebooks/) as the
# root of the file browser, so the other notebooks are one click away.
lab: setup  ## the main job: JupyterLab on the course, opened at the overview notebook
	$(BIN)/jupyter trust -y notebooks/*.ipynb >/dev/null  # stored animations may run
	$(BIN)/jupyter lab notebooks/00_overview.ipynb $(ALLOW_ROOT)

demo: setup  ## headless tour: CD and CT on a 2D toy, figure and table in outputs/
	$(BIN)/python -m cmedu.course.demo --out outputs

# student/ is git-ignored and never cleaned: it holds the learner's own work.
exercises: setup  ## student copies of the notebooks in student/: solutions and outputs cleared (nbgrader)
	$(BIN)/python scripts/exercises.py --out student

test: setup  ## lint, build the docs (warnings as errors), then the whole test suite (nbval)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(SPHINX) -q
	CMEDU_FAST=1 $(BIN)/python -m pytest

e2e: setup  ## only the end-to-end tests in Chromium: the explorers in JupyterLab, the docs site offline (part of test)
	CMEDU_FAST=1 $(BIN)/python -m pytest -m e2e tests/e2e

# The documentation site (Sphinx + myst-nb); warnings are errors, so a broken reference fails.
SPHINX := $(BIN)/python -m sphinx -W --keep-going -b html docs docs/_build/html

docs: setup  ## build the documentation site into docs/_build/html (notebooks not re-run)
	$(SPHINX)

notebooks: setup  ## re-run every notebook in full mode and store its outputs
	$(BIN)/python scripts/notebooks.py --execute notebooks

bench: setup  ## benchmarks (minutes to an hour; results go to benchmarks/results/)
	$(BIN)/python benchmarks/toy_benchmark.py

clean:
	rm -rf outputs .pytest_cache .ruff_cache docs/_build docs/notebooks
