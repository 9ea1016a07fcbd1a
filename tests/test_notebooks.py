"""The stored notebooks of the course: outputs from one top-to-bottom run, figures, size,
learning goals, exercises with solutions, and an overview that links every notebook.

These tests read the .ipynb files only; running them is nbval's job (``make test``).
"""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
PATHS = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
MAX_BYTES = 3 * 1024 * 1024
EXPECTED = {
    "00_overview",
    "01_pf_ode",
    "02_score_estimation",
    "03_solvers",
    "04_consistency_distillation",
    "05_consistency_training",
    "06_sampling",
    "07_cifar10_consistency_training",
    "08_cifar10_distillation",
    "09_editing",
    "10_evaluation",
    "11_beyond_ict",
}


def _read(path: Path):
    return nbformat.read(path, as_version=4)


def _code_cells(nb):
    return [c for c in nb.cells if c.cell_type == "code"]


def test_the_course_has_every_notebook():
    assert {p.stem for p in PATHS} == EXPECTED


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_has_outputs_from_one_run_in_order(path):
    cells = _code_cells(_read(path))
    counts = [c.execution_count for c in cells]
    assert counts == list(range(1, len(cells) + 1)), f"{path.name}: execution counts {counts}"
    errors = [o for c in cells for o in c.outputs if o.output_type == "error"]
    assert not errors, f"{path.name} stores an error output: {errors[0].get('ename')}"
    assert any(c.outputs for c in cells), f"{path.name} has no stored outputs"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_has_a_figure(path):
    images = [
        o
        for c in _code_cells(_read(path))
        for o in c.outputs
        if o.output_type in ("display_data", "execute_result") and "image/png" in o.data
    ]
    assert images, f"{path.name} has no image/png output"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_is_at_most_3_mb(path):
    assert path.stat().st_size <= MAX_BYTES, f"{path.name}: {path.stat().st_size} bytes"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_opens_with_learning_goals(path):
    first = _read(path).cells[0]
    assert first.cell_type == "markdown" and "Learning goals" in first.source


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_notebook_ends_with_exercises_and_solutions(path):
    cells = _read(path).cells
    heading = [
        i
        for i, c in enumerate(cells)
        if c.cell_type == "markdown" and re.search(r"^#+\s*Exercises", c.source, re.M)
    ]
    assert heading, f"{path.name} has no Exercises section"
    after = cells[heading[-1] + 1 :]
    hidden = [
        c
        for c in after
        if c.cell_type == "code"
        and c.metadata.get("jupyter", {}).get("source_hidden")
        and "Solution" in c.source
    ]
    details = [c for c in after if c.cell_type == "markdown" and "<details>" in c.source]
    assert hidden or details, f"{path.name}: exercises without revealable solutions"


def test_overview_links_every_notebook():
    overview = _read(NOTEBOOKS / "00_overview.ipynb")
    text = "\n".join(c.source for c in overview.cells if c.cell_type == "markdown")
    for path in PATHS:
        if path.stem != "00_overview":
            assert f"]({path.name})" in text, f"the overview does not link {path.name}"


@pytest.mark.parametrize("path", PATHS, ids=lambda p: p.stem)
def test_checked_cells_print_something(path):
    """Cells marked NBVAL_CHECK_OUTPUT must have a stored output for nbval to compare."""
    for cell in _code_cells(_read(path)):
        if "NBVAL_CHECK_OUTPUT" in cell.source:
            assert cell.outputs, f"{path.name}: a checked cell has no stored output"
