"""Set-up shared by the notebook course: fast mode, budgets, seeds, device and threads.

Every notebook starts with ``device = course.setup()``. With the environment variable
``CMEDU_FAST=1`` every budget shrinks (``budget(full, fast)``) so that a notebook runs in
a minute or less on two CPU cores (10 to 60 s measured); that is how the test suite runs them.

Besides the set-up it holds what only the notebooks need: ``on_cpu`` (a network on any
device seen as a CPU float64 function, for plots and checks), and the image data of the
CIFAR-10 notebooks (``course_images``). The figures are in ``cmedu.course.plotting``, the
explorers in ``cmedu.course.widgets``, the headless tour in ``cmedu.course.demo``.
"""

from __future__ import annotations

import os
import random
import warnings
from pathlib import Path

import torch
from torch import Tensor

from ..runtime.device import default_device

# Torch CPU threads for the toy MLPs. Measured on the course's reference machine (2 shared
# AMD EPYC cores, load ~3 from other work; ToyMLP, batch 512, 300 training steps):
#   hidden 128 depth 3, CD:  1 thread  4.4 ms/step,  2 threads 109 ms/step
#   hidden 256 depth 4, CD:  1 thread 21.5 ms/step,  2 threads 173 ms/step
# The matrices are too small to gain from a second thread, and threads that wait on a
# busy core stall every step, so one thread is the deliberate choice.
TOY_THREADS = 1


def fast_mode() -> bool:
    """True when the environment variable ``CMEDU_FAST`` is set to ``1``."""
    return os.environ.get("CMEDU_FAST", "0") == "1"


def budget(full, fast):
    """``fast`` in fast mode (``CMEDU_FAST=1``), else ``full``: steps, sample sizes, grids."""
    return fast if fast_mode() else full


def seed_everything(seed: int = 0) -> None:
    """Seed Python's and torch's generators (every device) so that a notebook reruns
    identically. The course draws all its randomness from torch."""
    random.seed(seed)
    torch.manual_seed(seed)


def setup(seed: int = 0, threads: int | None = TOY_THREADS, verbose: bool = True):
    """Notebook set-up: seeds, torch threads (CPU), figure style; returns the device.

    The device is ``cmedu.default_device()``: CUDA if available, else MPS, else CPU.
    """
    device = default_device()
    # torch's first forward-mode JVP (sCM, MeanFlow) loads decompositions through the
    # deprecated torch.jit.script and warns; nothing in a notebook can act on it
    warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated",
                            category=FutureWarning)  # fmt: skip
    if threads is not None:
        torch.set_num_threads(threads)
    seed_everything(seed)
    from .plotting import use_course_style

    use_course_style()
    if verbose:
        mode = "fast" if fast_mode() else "full"
        print(f"device: {device.type}, torch threads: {torch.get_num_threads()}, mode: {mode}")
    return device


def on_cpu(fn, device, dtype=torch.float32):
    """Wrap ``fn(x, t)`` (a network on ``device``) to take and return CPU float64 tensors,
    as the plotting helpers and the exact mixture use; evaluated without gradients."""

    def wrapped(x: Tensor, t) -> Tensor:
        t = torch.as_tensor(t, dtype=dtype).to(device)
        with torch.no_grad():
            return fn(x.to(device, dtype), t).to("cpu", torch.float64)

    return wrapped


# --- Image data for the CIFAR-10 notebooks ----------------------------------------------------

# Torch CPU threads for the image notebooks. On a quiet 2-core machine a U-Net gains from the
# second core (benchmarks/results/images-cpu-2026-11-28.md, batch 32: "tiny" 30.6 img/s on 1
# thread, 54.3 on 2), but with other work running (load average 8) one iCT step of "tiny" at
# 16 px, batch 16, took 1.4 s on 1 thread and over 30 s on 2. One thread is the robust choice;
# pass ``threads=None`` to ``setup`` to keep torch's default on a machine of your own.
IMAGE_THREADS = 1
# An offline copy of CIFAR-10 as an image folder or zip, used when the official download
# fails: the path in this environment variable (the test suite and scripts/notebooks.py set
# it to the copy kept beside the repository, where there is one).
JPEG_COPY_ENV = "CMEDU_CIFAR10_JPEG"
# What a notebook prints when it falls back to the copy: the setting, not a path of the
# machine (the download's own error, with its paths, is raised when there is no copy).
_OFFLINE_NOTE = (
    "The official CIFAR-10 is not in cmedu's data folder and could not be downloaded; "
    "using the offline copy named by ${env} ({name})."
)


def jpeg_copy() -> Path | None:
    """Path of the offline CIFAR-10 JPEG copy named by $CMEDU_CIFAR10_JPEG, or None when the
    variable is unset or names nothing."""
    value = os.environ.get(JPEG_COPY_ENV)
    path = Path(value).expanduser() if value else None
    return path if path is not None and path.exists() else None


def course_images(train: bool = True, fast_n: int = 2048, fast_resolution: int = 16):
    """The image data of the CIFAR-10 notebooks, an ``ImageData``.

    Fast mode: ``fast_n`` synthetic shapes of ``fast_resolution`` pixels (no download, a few
    seconds of training). Otherwise the official CIFAR-10 (torchvision, downloaded into
    ``cmedu.images.default_data_root()``); if that fails and an offline JPEG copy is present
    (``jpeg_copy()``) it is used and named "CIFAR-10 (JPEG copy)", saying so; if neither, the
    ``DatasetNotFoundError`` of the download, which says how to get the data.
    """
    from ..data.images import DatasetNotFoundError, load_images, synthetic_shapes

    if fast_mode():
        return synthetic_shapes(fast_n, fast_resolution, seed=0 if train else 1)
    try:
        return load_images("cifar10", train=train)
    except DatasetNotFoundError:
        copy = jpeg_copy()
        if copy is None:
            raise
        print(_OFFLINE_NOTE.format(env=JPEG_COPY_ENV, name=copy.name))
        return load_images(copy, train=train)
