"""Sample-quality measures for the toys.

The energy distance (Székely & Rizzo 2013) between distributions P and Q,

    E(P, Q) = 2 E||X - Y|| - E||X - X'|| - E||Y - Y'||,   X, X' ~ P,  Y, Y' ~ Q,

is zero iff P = Q. ``energy_distance`` is its unbiased U-statistic estimate (the
within-sample averages skip the diagonal), so an estimate from two independent samples
of the same law scatters around 0.
"""

from __future__ import annotations

import torch
from torch import Tensor


def _mean_pairwise(x: Tensor, y: Tensor, same: bool, chunk: int) -> float:
    """Mean of ||x_i - y_j|| over all pairs (over i != j when ``same``), in float64."""
    total = 0.0
    for start in range(0, x.shape[0], chunk):
        block = torch.cdist(x[start : start + chunk], y)
        total += block.double().sum().item()
    n, m = x.shape[0], y.shape[0]
    return total / (n * (n - 1)) if same else total / (n * m)


def energy_distance(x: Tensor, y: Tensor, chunk: int = 2048) -> float:
    """Unbiased estimate of the energy distance between samples x (n, d) and y (m, d)."""
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need samples of shape (n, d) and (m, d), got {x.shape}, {y.shape}")
    x, y = x.detach().cpu().double(), y.detach().cpu().double()
    xy = _mean_pairwise(x, y, False, chunk)
    xx = _mean_pairwise(x, x, True, chunk)  # the diagonal is 0 and is simply not counted
    yy = _mean_pairwise(y, y, True, chunk)
    return 2 * xy - xx - yy
