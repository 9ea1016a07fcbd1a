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


def mean_pairwise_distance(x: Tensor, y: Tensor | None = None, chunk: int = 4096) -> float:
    """Mean of ||x_i - y_j|| over all pairs; with ``y=None``, over pairs i != j of x.

    Float64, in blocks of ``chunk`` rows; the within-sample mean visits each pair once.
    """
    x = x.detach().cpu().double()
    if y is not None:
        y = y.detach().cpu().double()
        total = sum(torch.cdist(x[i : i + chunk], y).sum().item() for i in range(0, len(x), chunk))
        return total / (len(x) * len(y))
    total = 0.0
    for i in range(0, len(x), chunk):
        block = torch.cdist(x[i : i + chunk], x[i:])  # rows i.., columns i.. (upper part)
        diagonal = block[:, :chunk].sum().item()  # the symmetric diagonal block
        total += 2 * block.sum().item() - diagonal
    n = len(x)
    return total / (n * (n - 1))


def energy_distance(x: Tensor, y: Tensor, yy: float | None = None) -> float:
    """Unbiased estimate of the energy distance between samples x (n, d) and y (m, d).

    ``yy`` may pass a precomputed ``mean_pairwise_distance(y)`` when y is a reference set
    reused across many comparisons.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"need samples of shape (n, d) and (m, d), got {x.shape}, {y.shape}")
    yy = mean_pairwise_distance(y) if yy is None else yy
    return 2 * mean_pairwise_distance(x, y) - mean_pairwise_distance(x) - yy
