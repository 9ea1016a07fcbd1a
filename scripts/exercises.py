"""Student versions of the course notebooks, and the stored outputs of their exercise checks.

    python scripts/exercises.py                      # make exercises: student/*.ipynb
    python scripts/exercises.py --out DIR            # the student versions elsewhere
    python scripts/exercises.py --refresh notebooks/03_solvers.ipynb

The notebooks in notebooks/ are the instructor versions: each exercise cell (tag
``exercise``) holds its solution between nbgrader's ``### BEGIN SOLUTION`` and
``### END SOLUTION`` markers, and is followed by a check cell (tag ``exercise-check``) that
calls ``cmedu.course.exercises.check``; the discussion exercises at the end of a notebook
have their solutions in cells tagged ``solution`` (code, or a markdown ``<details>`` block).
All of them carry nbgrader's ``solution`` metadata.

A student version is made with nbgrader's own preprocessors: ``ClearSolutions`` replaces
each marked region by ``raise NotImplementedError()`` (so the check reports "not yet
done") and each discussion solution by an empty ``# YOUR CODE HERE`` cell or "YOUR ANSWER
HERE"; ``ClearOutput`` clears every output, so no stored output shows an answer. The cells
to fill in are shown (their hidden flags removed).

``--refresh`` executes only the set-up cell (the first code cell), the exercise and the
check cells of a notebook in a fresh kernel, stores their outputs in place and renumbers
the execution counts in order; the training cells are not re-run (their stored outputs do
not depend on the exercise cells, whose checks leave the random state untouched).

A tool for the course (``make exercises``); it is not part of the package.
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import sys
from pathlib import Path

import nbformat

REPO = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("notebooks_runner", REPO / "scripts/notebooks.py")
runner = importlib.util.module_from_spec(_spec)  # the course's notebook runner, one executor
_spec.loader.exec_module(runner)
EXERCISE, CHECK, SOLUTION = "exercise", "exercise-check", "solution"
HIDDEN = {"source_hidden": True, "outputs_hidden": True}
HIDE_TAG = "hide-cell"  # myst-nb: a collapsed toggle on the docs site
NOT_DONE_STUB = "# YOUR CODE HERE\nraise NotImplementedError()"  # nbgrader's default
OPEN_STUB = "# YOUR CODE HERE"  # a discussion exercise: the notebook still runs on


def tags(cell) -> list[str]:
    return list(cell.metadata.get("tags", []))


def is_setup(nb, index: int) -> bool:
    """The set-up cell: the notebook's first code cell (imports, ``course.setup()``)."""
    first = next(i for i, c in enumerate(nb.cells) if c.cell_type == "code")
    return index == first


def exercise_cells(nb) -> list[int]:
    """Indices of the cells that a check run executes: set-up, exercises and checks."""
    return [
        i
        for i, c in enumerate(nb.cells)
        if c.cell_type == "code" and (is_setup(nb, i) or {EXERCISE, CHECK} & set(tags(c)))
    ]


def _clear_solutions(stub: str):
    from nbgrader.preprocessors import ClearSolutions

    return ClearSolutions(code_stub={"python": stub})


def student_version(nb):
    """A copy of the instructor notebook ``nb`` without solutions or outputs."""
    from nbgrader.preprocessors import ClearOutput

    nb = copy.deepcopy(nb)
    resources = {"language": "python"}
    for stub, tag in ((NOT_DONE_STUB, EXERCISE), (OPEN_STUB, SOLUTION)):
        clear = _clear_solutions(stub)
        for i, cell in enumerate(nb.cells):
            if tag in tags(cell):
                nb.cells[i], _ = clear.preprocess_cell(cell, resources, i)
                cell.metadata.pop("jupyter", None)  # shown: the learner fills it in
                cell.metadata["tags"] = [t for t in tags(cell) if t != HIDE_TAG]
    nb, _ = ClearOutput().preprocess(nb, {})
    return nb


def write_students(folder: Path, out: Path) -> list[Path]:
    """Write the student version of every notebook of ``folder`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for path in sorted(folder.glob("[0-9][0-9]_*.ipynb")):
        nb = student_version(nbformat.read(path, as_version=4))
        nbformat.write(nb, out / path.name)
        written.append(out / path.name)
    return written


def execute_cells(nb, indices: list[int], cwd: Path, fast: bool = False):
    """Execute the cells ``indices`` of ``nb`` in order in a fresh kernel (the course's
    runner, ``scripts/notebooks.py``); returns the executed copies of those cells."""
    return runner.run_cells(nb, indices, cwd, fast, timeout=600).cells


def renumber(nb) -> None:
    """Execution counts 1, 2, 3, ... over the code cells, as one top-to-bottom run gives."""
    code = [c for c in nb.cells if c.cell_type == "code"]
    for n, cell in enumerate(code, start=1):
        cell.execution_count = n
        for out in cell.outputs:
            if out.output_type == "execute_result":
                out.execution_count = n


def refresh(path: Path) -> None:
    """Re-run the set-up, exercise and check cells of ``path``; store their outputs."""
    nb = nbformat.read(path, as_version=4)
    indices = exercise_cells(nb)
    executed = execute_cells(nb, indices, path.parent)
    for i, cell in zip(indices, executed):
        if not is_setup(nb, i):
            nb.cells[i].outputs = cell.outputs
    renumber(nb)
    nbformat.write(runner.clean(nb), path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(
        prog="python scripts/exercises.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--notebooks", default=str(REPO / "notebooks"), help="instructor versions")
    p.add_argument("--out", default=str(REPO / "student"), help="folder of the student versions")
    p.add_argument(
        "--refresh",
        nargs="*",
        metavar="NOTEBOOK",
        help="re-run the exercise checks of these notebooks and store their outputs",
    )
    args = p.parse_args(argv)
    if args.refresh:
        for path in args.refresh:
            refresh(Path(path))
            print(f"stored the exercise checks of {path}")
        return 0
    written = write_students(Path(args.notebooks), Path(args.out))
    print(f"wrote {len(written)} student notebooks to {args.out}/ (solutions and outputs cleared)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
