"""Sample-quality measures for the toys.

The energy distance (Székely & Rizzo 2013) between distributions P and Q,

    E(P, Q) = 2 E||X - Y|| - E||X - X'|| - E||Y - Y'||,   X, X' ~ P,  Y, Y' ~ Q,

is zero iff P = Q. ``energy_distance`` is its unbiased U-statistic estimate (the
within-sample averages skip the diagonal), so an estimate from two independent samples
of the same law scatters around 0.

``frechet_distance`` is the distance between two Gaussians that FID (Heusel et al. 2017)
applies to Inception features of images (``cmedu.evaluation``).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from . import checks


def mean_pairwise_distance(x: Tensor, y: Tensor | None = None, chunk: int = 4096) -> float:
    """Mean of ||x_i - y_j|| over all pairs; with ``y=None``, over pairs i != j of x.

    The terms E||X - Y|| and E||X - X'|| of the energy distance (Székely & Rizzo 2013).

    Float64, in blocks of ``chunk`` rows; the within-sample mean visits each pair once.
    """
    _check_samples("x", x, 1 if y is not None else 2)
    if y is not None:
        _check_samples("y", y, 1)
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
    """Unbiased estimate of the energy distance (Székely & Rizzo 2013) between samples x
    (n, d) and y (m, d): 2 E||X - Y|| - E||X - X'|| - E||Y - Y'||.

    ``yy`` may pass a precomputed ``mean_pairwise_distance(y)`` when y is a reference set
    reused across many comparisons.
    """
    _check_samples("x", x)
    _check_samples("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"y: expected samples of the dimension of x, {x.shape[1]}, got "
                         f"shape {tuple(y.shape)}")  # fmt: skip
    if yy is not None:
        checks.check_number("yy", yy, 0.0)
    yy = mean_pairwise_distance(y) if yy is None else yy
    return 2 * mean_pairwise_distance(x, y) - mean_pairwise_distance(x) - yy


def frechet_distance(mu1, sigma1, mu2, sigma2) -> float:
    """Fréchet (2-Wasserstein) distance squared between N(mu1, sigma1) and N(mu2, sigma2),

        d^2 = ||mu1 - mu2||^2 + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^{1/2}),

    Dowson & Landau 1982; with Inception features it is the FID of Heusel et al. 2017.
    The trace of the matrix square root is taken as
    Tr((sigma1 sigma2)^{1/2}) = Tr((s sigma2 s)^{1/2}), s = sigma1^{1/2}: s sigma2 s is
    symmetric positive semi-definite and similar to sigma1 sigma2 (same eigenvalues), so two
    symmetric eigendecompositions give it without complex round-off, also for the singular
    covariances of fewer samples than dimensions.

    Parameters
    ----------
    mu1, mu2 : array, shape (d,)
    sigma1, sigma2 : array, shape (d, d), symmetric positive semi-definite

    Returns
    -------
    float, >= 0 up to round-off (float64 arithmetic).
    """
    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    sigma1, sigma2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    d = mu1.shape[0] if mu1.ndim == 1 else -1
    if (mu1.shape, mu2.shape, sigma1.shape, sigma2.shape) != ((d,), (d,), (d, d), (d, d)):
        shapes = [a.shape for a in (mu1, sigma1, mu2, sigma2)]
        raise ValueError(f"need means (d,) and covariances (d, d), got shapes {shapes}")
    for name, a in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        checks.check_finite(name, torch.from_numpy(a))
    w, V = np.linalg.eigh(sigma1)
    s = (V * np.sqrt(np.clip(w, 0, None))) @ V.T  # $\Sigma_1^{1/2}$
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh(s @ sigma2 @ s), 0, None)).sum()
    dmu = mu1 - mu2
    return float(dmu @ dmu + np.trace(sigma1) + np.trace(sigma2) - 2 * tr_sqrt)


def _check_samples(name: str, x, minimum: int = 2) -> None:
    """A finite sample of shape (n, d), n >= minimum (the within-sample mean needs 2)."""
    checks.check_tensor(name, x)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected samples of shape (n, d), got shape {tuple(x.shape)}")
    if x.shape[0] < minimum:
        why = " (the estimate averages over pairs of distinct samples)" if minimum == 2 else ""
        raise ValueError(f"{name}: expected at least {minimum} samples{why}, got shape "
                         f"{tuple(x.shape)}")  # fmt: skip
    checks.check_finite(name, x)
