"""Run the notebook course top to bottom: ``python scripts/notebooks.py --execute notebooks``.

Full mode (the default) executes every notebook in a fresh ``python3`` kernel with
nbclient and writes the outputs back in place, so the stored outputs come from one run
with execution counts 1, 2, 3, ... in order. ``--fast`` runs with ``CMEDU_FAST=1`` and
writes nothing (for timing the test suite's mode). Each notebook's wall time is printed;
a notebook that raises stops the run with a non-zero exit status.

Kernels run with ``CMEDU_HEADLESS=1``: the interactive explorers draw static figures. Where
``CMEDU_CIFAR10_JPEG`` is unset and an offline CIFAR-10 copy lies beside the repository
(``../shared/data/cifar10-jpeg.zip``), the kernels get its path, so that the CIFAR-10
notebooks run where the official download cannot be reached.

Every notebook written is ``clean``: a stream output holds the text a reader sees (a
progress bar's carriage-return fragments collapsed to its last state, one line per bar),
and widget state that no output displays (the widget bars of a live session) is dropped.
``--clean`` applies that to the stored notebooks without running them. ``--through N``
re-runs only cells 0 to N (a prefix, in a fresh kernel, so their outputs and execution
counts are those of a full run) and stores their outputs, for a change that touches only
the first cells of a notebook.

A tool for developing the course (``make notebooks``); it is not part of the package.
"""

from __future__ import annotations

import argparse
import copy
import os
import re
import sys
import time
from pathlib import Path

CELL_TIMEOUT = 1800  # seconds per cell: generous, full-mode training cells take ~1 minute
REPO = Path(__file__).resolve().parents[1]
JPEG_COPY = REPO.parent / "shared" / "data" / "cifar10-jpeg.zip"


def find_notebooks(folder: str | Path, only: list[str] | None = None) -> list[Path]:
    """The course notebooks in ``folder``, in name order (00_..., 01_..., ...)."""
    paths = sorted(p for p in Path(folder).glob("*.ipynb") if not p.name.startswith("."))
    if only:
        paths = [p for p in paths if any(key in p.name for key in only)]
    return paths


def kernel_env(fast: bool) -> dict[str, str]:
    """The environment of the course's kernels: headless explorers, fast or full mode, and
    the offline CIFAR-10 copy beside the repository where none is set."""
    env = {"CMEDU_HEADLESS": "1", "CMEDU_FAST": "1" if fast else "0"}
    if "CMEDU_CIFAR10_JPEG" not in os.environ and JPEG_COPY.is_file():
        env["CMEDU_CIFAR10_JPEG"] = str(JPEG_COPY)
    return env


def run_cells(nb, indices, cwd: Path, fast: bool, timeout: int = CELL_TIMEOUT):
    """Execute the cells ``indices`` of ``nb``, in order, in one fresh ``python3`` kernel
    started in ``cwd`` with ``kernel_env(fast)``; returns the executed notebook of those
    cells (copies; ``nb`` is not changed), its metadata carrying any widget state. Raises
    nbclient's CellExecutionError, naming the cell, if one fails. The process environment
    is restored afterwards."""
    import nbformat
    from nbclient import NotebookClient

    part = nbformat.v4.new_notebook(metadata=copy.deepcopy(nb.metadata))
    part.cells = [copy.deepcopy(nb.cells[i]) for i in indices]
    env = kernel_env(fast)
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # the kernel inherits this process's environment
    try:
        NotebookClient(part, timeout=timeout, kernel_name="python3", record_timing=False,
                       resources={"metadata": {"path": str(cwd)}}).execute()  # fmt: skip
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k)
            else:
                os.environ[k] = v
    return part


def execute(
    path: Path, fast: bool, write: bool, timeout: int = CELL_TIMEOUT, through: int | None = None
) -> float:
    """Execute one notebook in a fresh kernel (cwd = its folder), or only its cells 0 to
    ``through``; returns the wall time. Written notebooks are ``clean``."""
    import nbformat

    nb = nbformat.read(path, as_version=4)
    if through is not None and not 0 <= through < len(nb.cells):
        raise SystemExit(f"--through {through}: the notebook has cells 0 to {len(nb.cells) - 1}")
    indices = range(len(nb.cells) if through is None else through + 1)
    start = time.perf_counter()
    ran = run_cells(nb, indices, path.parent, fast, timeout)
    seconds = time.perf_counter() - start
    if through is None:
        nb.metadata = ran.metadata
    for i, cell in zip(indices, ran.cells, strict=True):
        if cell.cell_type == "code":
            nb.cells[i].outputs, nb.cells[i].execution_count = cell.outputs, cell.execution_count
    if write:
        nbformat.write(clean(nb), path)
    return seconds


def shown_text(text: str) -> str:
    """What a notebook front end shows for a stream: within each line, a carriage return
    starts the line again, so only the text after the last one remains."""
    lines = text.split("\n")
    return "\n".join(line.rstrip("\r").rsplit("\r", 1)[-1] for line in lines)


def clean(nb):
    """``nb`` with each cell's consecutive stream outputs joined and reduced to their
    ``shown_text`` (blank ones dropped) and the widget state that no output displays
    removed. Returns ``nb`` (changed in place)."""
    shown = set()
    for cell in nb.cells:
        if "outputs" in cell:
            cell.outputs = _joined_streams(cell.outputs)
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream":
                out["text"] = shown_text("".join(out["text"]))
            view = out.get("data", {}).get(WIDGET_VIEW)
            if view:
                shown.add(view["model_id"])
        if "outputs" in cell:  # a stream left blank (a bar's carriage returns) shows nothing
            cell.outputs = [
                o for o in cell.outputs if o.get("output_type") != "stream" or o["text"].strip()
            ]
    widgets = nb.metadata.get("widgets", {}).get(WIDGET_STATE)
    if widgets is not None:
        kept = {k: v for k, v in widgets.get("state", {}).items() if k in shown}
        if kept:
            widgets["state"] = kept
        else:
            del nb.metadata["widgets"]
    return nb


def _joined_streams(outputs: list) -> list:
    """Consecutive stream outputs of one stream joined into one, as a front end shows them."""
    joined = []
    for out in outputs:
        last = joined[-1] if joined else None
        if (
            last is not None
            and out.get("output_type") == last.get("output_type") == "stream"
            and out.get("name") == last.get("name")
        ):
            last["text"] = "".join(last["text"]) + "".join(out["text"])
        else:
            joined.append(out)
    return joined


WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# Text no stored output may hold: a path of the machine that ran it, a traceback.
MACHINE_PATH = re.compile(r"(?<![\w.])(/root|/home|/Users|/tmp|/work|/private|[A-Z]:\\Users)[/\\]")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/notebooks.py", description=__doc__)
    p.add_argument("--execute", metavar="FOLDER", default="notebooks", help="notebook folder")
    p.add_argument("--fast", action="store_true", help="CMEDU_FAST=1 and do not write outputs")
    p.add_argument("--only", nargs="*", help="substrings of notebook names to run")
    p.add_argument("--through", type=int, metavar="N", help="run only cells 0 to N (one notebook)")
    p.add_argument("--clean", action="store_true", help="only clean the stored notebooks")
    args = p.parse_args(argv)
    paths = find_notebooks(args.execute, args.only)
    if not paths:
        print(f"no notebooks found in {args.execute}", file=sys.stderr)
        return 2
    if args.clean:
        return _clean_stored(paths)
    if args.through is not None and len(paths) != 1:
        print("--through needs exactly one notebook (--only NAME)", file=sys.stderr)
        return 2
    mode = "fast (CMEDU_FAST=1, outputs not written)" if args.fast else "full (outputs written)"
    print(f"running {len(paths)} notebooks in {mode} mode")
    total = 0.0
    for path in paths:
        try:
            seconds = execute(path, fast=args.fast, write=not args.fast, through=args.through)
        except Exception as err:
            print(f"FAILED {path}: {type(err).__name__}\n{err}", file=sys.stderr)
            return 1
        total += seconds
        print(f"{path.name:40s} {seconds:7.1f} s", flush=True)
    print(f"{'total':40s} {total:7.1f} s")
    return 0


def _clean_stored(paths: list[Path]) -> int:
    import nbformat

    for path in paths:
        nbformat.write(clean(nbformat.read(path, as_version=4)), path)
        print(f"cleaned {path.name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
