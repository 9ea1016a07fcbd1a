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

A tool for developing the course (``make notebooks``); it is not part of the package.
"""

from __future__ import annotations

import argparse
import os
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


def execute(path: Path, fast: bool, write: bool, timeout: int = CELL_TIMEOUT) -> float:
    """Execute one notebook in a fresh kernel (cwd = its folder); returns the wall time."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    os.environ["CMEDU_HEADLESS"] = "1"
    os.environ["CMEDU_FAST"] = "1" if fast else "0"
    if "CMEDU_CIFAR10_JPEG" not in os.environ and JPEG_COPY.is_file():
        os.environ["CMEDU_CIFAR10_JPEG"] = str(JPEG_COPY)
    client = NotebookClient(
        nb,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        record_timing=False,
    )
    start = time.perf_counter()
    client.execute()  # raises CellExecutionError, naming the cell, if one fails
    seconds = time.perf_counter() - start
    if write:
        nbformat.write(tidy(nb), path)
    return seconds


def _final_lines(text: str) -> str:
    """What a terminal shows of ``text``: each line's last state after carriage returns."""
    lines = []
    for line in text.split("\n"):
        states = [state for state in line.split("\r") if state.strip()]
        lines.append(states[-1] if states else "")
    return "\n".join(lines)


def tidy(nb):
    """Stored outputs as a reader sees them: consecutive stream outputs of one cell merged,
    progress bars reduced to their final line, blank streams dropped, and no widget state
    (the explorers are redrawn by a live kernel, never restored from the file)."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        outputs = []
        for out in cell.outputs:
            last = outputs[-1] if outputs else None
            if out.output_type == "stream" and last is not None and last.output_type == "stream" \
                    and last.name == out.name:  # fmt: skip
                last.text += out.text
            else:
                outputs.append(out)
        for out in outputs:
            if out.output_type == "stream":
                out.text = _final_lines(out.text).strip("\n") + "\n"
        cell.outputs = [o for o in outputs if o.output_type != "stream" or o.text.strip()]
    nb.metadata.pop("widgets", None)
    return nb


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python scripts/notebooks.py", description=__doc__)
    p.add_argument("--execute", metavar="FOLDER", default="notebooks", help="notebook folder")
    p.add_argument("--fast", action="store_true", help="CMEDU_FAST=1 and do not write outputs")
    p.add_argument("--only", nargs="*", help="substrings of notebook names to run")
    args = p.parse_args(argv)
    paths = find_notebooks(args.execute, args.only)
    if not paths:
        print(f"no notebooks found in {args.execute}", file=sys.stderr)
        return 2
    mode = "fast (CMEDU_FAST=1, outputs not written)" if args.fast else "full (outputs written)"
    print(f"running {len(paths)} notebooks in {mode} mode")
    total = 0.0
    for path in paths:
        try:
            seconds = execute(path, fast=args.fast, write=not args.fast)
        except Exception as err:
            print(f"FAILED {path}: {type(err).__name__}\n{err}", file=sys.stderr)
            return 1
        total += seconds
        print(f"{path.name:40s} {seconds:7.1f} s", flush=True)
    print(f"{'total':40s} {total:7.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
