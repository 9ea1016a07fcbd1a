"""Runs that the CIFAR-10 notebooks keep, and the model a later notebook picks.

Notebooks 7 and 8 train into ``runs/<name>`` at the top of the repository (or under
``$CMEDU_RUNS``), so that their models outlive the kernel: notebook 9 edits with them and
notebook 10 measures them. A later notebook takes such a run when it finished and saw at
least as many training images as the shipped checkpoint it would replace (a GPU run of the
``small`` U-Net does; the CPU's 150-step demonstration does not), else the shipped
checkpoint, and it says which and why (``CourseModel.why``). Fast mode (the test suite)
keeps no run: its few steps on synthetic shapes are not a model worth reusing.

Messages name a run as ``runs/<name>``, never by a path of the machine.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import torch

from ..training.checkpoint import has_checkpoint, load_checkpoint
from ..training.pretrained import CHECKPOINTS, load_pretrained
from ..training.runs import load_run
from . import fast_mode

RUNS_ENV = "CMEDU_RUNS"
METHOD_NAMES = {"dsm": "DSM", "cd": "CD", "ct": "CT", "ict": "iCT", "ect": "ECT", "scm": "sCM",
                "scd": "sCD", "meanflow": "MeanFlow"}  # fmt: skip


def runs_root() -> Path:
    """The folder of the notebooks' runs: ``$CMEDU_RUNS``, else ``runs/`` beside
    ``checkpoints/`` (git-ignored)."""
    value = os.environ.get(RUNS_ENV)
    return Path(value).expanduser() if value else CHECKPOINTS.parent / "runs"


def notebook_run_dir(name: str) -> Path | None:
    """Where a notebook keeps its run ``name`` (``run_name``): ``runs_root() / name``;
    None in fast mode."""
    return None if fast_mode() else runs_root() / name


@dataclasses.dataclass
class CourseModel:
    """A model for a notebook: from a kept run or a shipped checkpoint.

    ``source`` is "run" or "shipped"; ``name`` is ``runs/<name>`` or the checkpoint's name;
    ``images`` the training images it saw (steps x batch); ``why`` one sentence on the choice.
    """

    model: torch.nn.Module
    source: str
    name: str
    method: str
    steps: int
    images: int
    why: str

    @property
    def label(self) -> str:
        """A figure title: what the model is and where it comes from."""
        kind = "run" if self.source == "run" else "shipped"
        method = METHOD_NAMES.get(self.method, self.method)
        return f"{method}, {kind} {self.name} ({self.steps:,} steps)"


def run_progress(directory: Path) -> tuple[int, int, int] | None:
    """(step reached, steps planned, batch size) of a run directory; None if it holds no
    checkpoint."""
    if not has_checkpoint(directory):
        return None
    state, config = load_checkpoint(directory)
    return int(state.get("step", 0)), int(config["steps"]), int(config["batch_size"])


def run_name(notebook: int, cfg) -> str:
    """The folder name of a notebook's run: notebook, method, network and plan, e.g.
    ``07-ict-tiny-150x32``, so that another plan trains into another folder instead of
    refusing to resume a run with different settings."""
    return f"{notebook:02d}-{cfg.method}-{cfg.net}-{cfg.steps}x{cfg.batch_size}"


def run_or_shipped(prefix: str, shipped: str, device="cpu") -> CourseModel:
    """The best kept run whose name starts with ``prefix`` (e.g. ``07-ict``): among the
    finished ones the one that saw the most training images, if it saw at least as many as
    the shipped checkpoint ``shipped``; else ``shipped``. ``why`` says which and why."""
    model, info = load_pretrained(shipped, device, with_info=True)
    cfg = info["config"]
    shipped_images = int(info["step"]) * cfg.batch_size
    chosen = CourseModel(model, "shipped", shipped, cfg.method, int(info["step"]),
                         shipped_images, "")  # fmt: skip
    root = None if fast_mode() else runs_root()
    runs = {p: run_progress(p) for p in sorted(root.glob(f"{prefix}*"))} if root else {}
    runs = {p: progress for p, progress in runs.items() if progress is not None}
    finished = {p: step * batch for p, (step, planned, batch) in runs.items() if step >= planned}
    if not runs:
        chosen.why = f"no run in runs/{prefix}*: using the shipped checkpoint {shipped}"
        return chosen
    if not finished:
        chosen.why = (f"the runs in runs/{prefix}* have not finished (run their notebook again "
                      f"to resume them): using the shipped checkpoint {shipped}")  # fmt: skip
        return chosen
    best = max(finished, key=finished.get)
    shown, images = f"runs/{best.name}", finished[best]
    if images < shipped_images:
        chosen.why = (f"{shown} saw {images:,} training images, fewer than the shipped "
                      f"checkpoint {shipped} ({shipped_images:,}): using the shipped "
                      "one")  # fmt: skip
        return chosen
    run_model, run_cfg, _ = load_run(best, device=device)
    why = (f"using the run in {shown} ({images:,} training images; the shipped "
           f"{shipped} saw {shipped_images:,})")  # fmt: skip
    return CourseModel(run_model, "run", shown, run_cfg.method, runs[best][0], images, why)
