"""Set-up shared by the notebook course: fast mode, budgets, seeds, device and threads.

Every notebook starts with ``device = course.setup()``. With the environment variable
``CMEDU_FAST=1`` every budget shrinks (``budget(full, fast)``) so that a notebook runs in
well under a minute on two CPU cores; that is how the test suite runs them.

The module also holds the few helpers the notebooks need beyond the core package:

* ``forward_sde_paths``, ``reverse_sde_paths``: ``cmedu.sde``, under the names the
  notebooks use;
* ``posterior_sample``: ``GaussianMixture.posterior_sample`` as a function;
* ``solver_chain``: the zero-loss limit of consistency distillation (Theorem 1);
* ``on_cpu``: a network on any device seen as a CPU float64 function, for plots and checks.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import torch
from torch import Tensor

from .device import default_device
from .sde import forward_sde_paths, reverse_sde_paths  # noqa: F401 (notebooks use them)
from .toys import GaussianMixture

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
    if threads is not None:
        torch.set_num_threads(threads)
    seed_everything(seed)
    from .plotting import use_course_style

    use_course_style()
    if verbose:
        mode = "fast" if fast_mode() else "full"
        print(f"device: {device.type}, torch threads: {torch.get_num_threads()}, mode: {mode}")
    return device


def posterior_sample(mixture: GaussianMixture, x_t: Tensor, t: float, n: int, generator=None):
    """n exact draws of x0 ~ p(x0 | x_t): ``GaussianMixture.posterior_sample`` (Lemma 1)."""
    return mixture.posterior_sample(x_t, t, n, generator)


def on_cpu(fn, device, dtype=torch.float32):
    """Wrap ``fn(x, t)`` (a network on ``device``) to take and return CPU float64 tensors,
    as the plotting helpers and the exact mixture use; evaluated without gradients."""

    def wrapped(x: Tensor, t) -> Tensor:
        t = torch.as_tensor(t, dtype=dtype).to(device)
        with torch.no_grad():
            return fn(x.to(device, dtype), t).to("cpu", torch.float64)

    return wrapped


def solver_chain(denoiser, states: Tensor, ts, solver: str = "heun", starts=None) -> Tensor:
    """The consistency function that consistency distillation reaches at zero loss.

    If L_CD^N = 0 (Eq. (7), with theta^- = theta), then f_theta(x, t_{n+1}) =
    f_theta(Phi(x), t_n) for every grid pair, and with f_theta(x, eps) = x this makes
    f_theta(x, t_n) the teacher's one-step solver chained from t_n down to eps. Theorem 1
    bounds its distance to the true f by O(Delta t^p).

    Parameters
    ----------
    denoiser : D(x, t) of the teacher (e.g. ``GaussianMixture.denoise``)
    states : Tensor, shape (N, B, d): points x_{t_n} at the grid times ``ts``
    ts : descending grid, shape (N,), ts[-1] = eps
    starts : optional ascending indices into ``ts`` to start from (default: all)

    Returns
    -------
    Tensor, shape (len(starts), B, d): the chain's end point from each start.
    """
    from .solvers import SOLVERS

    starts = list(range(len(ts))) if starts is None else sorted(starts)
    step, x = SOLVERS[solver], states[starts].clone()
    B, rest = x.shape[1], x.shape[2:]
    for i in range(len(ts) - 1):  # the rows that started at or before ts[i] step to ts[i + 1]
        m = sum(j <= i for j in starts)
        flat = x[:m].reshape(m * B, *rest)
        x[:m] = step(denoiser, flat, ts[i], ts[i + 1]).reshape(m, B, *rest)
    return x


# --- Image data for the CIFAR-10 notebooks ----------------------------------------------------

# Torch CPU threads for the image notebooks. On a quiet 2-core machine a U-Net gains from the
# second core (benchmarks/results/images-cpu-2026-11-28.md, batch 32: "tiny" 30.6 img/s on 1
# thread, 54.3 on 2), but with other work running (load average 8) one iCT step of "tiny" at
# 16 px, batch 16, took 1.4 s on 1 thread and over 30 s on 2. One thread is the robust choice;
# pass ``threads=None`` to ``setup`` to keep torch's default on a machine of your own.
IMAGE_THREADS = 1
# An offline copy of CIFAR-10 as an image folder, used when the official download fails:
# the environment variable, else the file beside the repository (if there is one).
JPEG_COPY_ENV = "CMEDU_CIFAR10_JPEG"
JPEG_COPY = Path(__file__).resolve().parent.parent.parent / "shared/data/cifar10-jpeg.zip"


def jpeg_copy() -> Path | None:
    """Path of the offline CIFAR-10 JPEG copy ($CMEDU_CIFAR10_JPEG, or beside the repository),
    or None when there is none."""
    path = Path(os.environ.get(JPEG_COPY_ENV, JPEG_COPY)).expanduser()
    return path if path.exists() else None


def course_images(train: bool = True, fast_n: int = 2048, fast_resolution: int = 16):
    """The image data of the CIFAR-10 notebooks, an ``ImageData``.

    Fast mode: ``fast_n`` synthetic shapes of ``fast_resolution`` pixels (no download, a few
    seconds of training). Otherwise the official CIFAR-10 (torchvision, downloaded into
    ``cmedu.images.default_data_root()``); if that fails and an offline JPEG copy is present
    (``jpeg_copy()``) it is used and named "CIFAR-10 (JPEG copy)", saying so; if neither, the
    ``DatasetNotFoundError`` of the download, which says how to get the data.
    """
    from .images import DatasetNotFoundError, load_images, synthetic_shapes

    if fast_mode():
        return synthetic_shapes(fast_n, fast_resolution, seed=0 if train else 1)
    try:
        return load_images("cifar10", train=train)
    except DatasetNotFoundError as err:
        copy = jpeg_copy()
        if copy is None:
            raise
        first_line = str(err).splitlines()[0]
        print(f"{first_line}\nUsing the offline copy instead: {copy}")
        return load_images(copy, train=train)
