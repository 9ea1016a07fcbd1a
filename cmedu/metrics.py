"""Sample-quality measures for the toys.

The energy distance (Székely & Rizzo 2013) between distributions P and Q,

    E(P, Q) = 2 E||X - Y|| - E||X - X'|| - E||Y - Y'||,   X, X' ~ P,  Y, Y' ~ Q,

is zero iff P = Q. ``energy_distance`` is its unbiased U-statistic estimate (the
within-sample averages skip the diagonal), so an estimate from two independent samples
of the same law scatters around 0.

``frechet_distance`` is the distance between two Gaussians that FID (Heusel et al. 2017)
applies to Inception features of images (``cmedu.evaluation``). ``kernel_distance`` is the
unbiased squared MMD with the cubic polynomial kernel that KID (Bińkowski et al. 2018)
applies to the same features, averaged over random subsets.
"""

from __future__ import annotations

import math

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
    _check_pair(x, y)
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


KID_DEGREE = 3  # k(x, y) = (x.y / d + 1)^3, Bińkowski et al. 2018, Sec. 4 ("KID")
KID_SUBSETS, KID_SUBSET_SIZE = 100, 1000  # their code's defaults (torch-fidelity's too)


def polynomial_kernel(x: Tensor, y: Tensor) -> Tensor:
    """k(x, y) = (x.y / d + 1)^3 of KID (Bińkowski et al. 2018) between all rows of x (m, d)
    and y (n, d): the Gram matrix, shape (m, n)."""
    return (x @ y.T / x.shape[1] + 1) ** KID_DEGREE


def mmd2_unbiased(x: Tensor, y: Tensor) -> float:
    """Unbiased estimate of MMD^2(P, Q) = E k(X, X') + E k(Y, Y') - 2 E k(X, Y) from samples
    x (m, d) ~ P and y (n, d) ~ Q, m, n >= 2: the within-sample means skip the diagonal
    (Gretton et al. 2012, Eq. (3)), so two samples of one law give 0 in expectation."""
    _check_pair(x, y)
    x, y = x.detach().cpu().double(), y.detach().cpu().double()
    m, n = len(x), len(y)
    k_xx, k_yy = polynomial_kernel(x, x), polynomial_kernel(y, y)
    xx = (k_xx.sum() - k_xx.diagonal().sum()) / (m * (m - 1))  # $E k(X, X')$, $X \ne X'$
    yy = (k_yy.sum() - k_yy.diagonal().sum()) / (n * (n - 1))
    xy = polynomial_kernel(x, y).mean()  # $E k(X, Y)$
    return (xx + yy - 2 * xy).item()


def kernel_distance(
    x: Tensor,
    y: Tensor,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    generator: torch.Generator | None = None,
) -> tuple[float, float]:
    """KID's estimate (Bińkowski et al. 2018): the mean and standard deviation, over
    ``subsets`` random subsets of ``min(subset_size, m, n)`` rows of x (m, d) and of y
    (n, d), drawn without replacement within each subset, of ``mmd2_unbiased``.

    An average of unbiased estimates, so unbiased: near 0 (either sign) for one law.
    """
    _check_pair(x, y)
    checks.check_count("subsets", subsets, 1)
    size = min(subset_size, len(x), len(y))
    values = [mmd2_unbiased(x[torch.randperm(len(x), generator=generator)[:size]],
                            y[torch.randperm(len(y), generator=generator)[:size]])
              for _ in range(subsets)]  # fmt: skip
    return float(np.mean(values)), float(np.std(values))


def classifier_score(logits: Tensor, splits: int = 1) -> tuple[float, float]:
    """exp(E_x KL(p(y|x) || p(y))): the Inception Score's formula (Salimans et al. 2016,
    Sec. 4) for any classifier's logits (N, K), p(y|x) = softmax(logits).

    The samples are cut into ``splits`` consecutive parts (at most one per sample); within
    each part p(y) is the mean of p(y|x), as in the original IS code. Returns the mean and
    standard deviation over the parts; 1 <= score <= K: K for confident predictions spread
    evenly over the K classes, 1 for one class or for uninformative predictions.
    """
    scores = []
    for part in logits.double().tensor_split(min(splits, len(logits))):
        log_p = part.log_softmax(1)  # $\log p(y|x)$
        log_py = log_p.logsumexp(0) - math.log(len(part))  # $\log p(y) = \log E_x p(y|x)$
        terms = torch.where(log_p > -math.inf, log_p.exp() * (log_p - log_py), 0.0)  # 0 log 0 = 0
        kl = terms.sum(1)  # $KL(p(y|x) \| p(y))$
        scores.append(kl.mean().exp().item())
    return float(np.mean(scores)), float(np.std(scores))


def _check_pair(x, y) -> None:
    """Two samples x (n, d), y (m, d) of one dimension d, each as ``_check_samples``."""
    _check_samples("x", x)
    _check_samples("y", y)
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"y: expected samples of the dimension of x, {x.shape[1]}, got "
                         f"shape {tuple(y.shape)}")  # fmt: skip


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


# ---------------------------------------------------------------------------------------
# Exact-ground-truth measures for samples of a Gaussian mixture
#
# Energy distance weighs every sample by its distance to the others, so a thin bridge of
# samples between two modes, or a few lost percent of a mode's mass, barely moves it. Where
# the data is a ``GaussianMixture`` its density and the posterior over its components are
# exact, and two failure modes can be counted directly:
# - precision: the fraction of samples where the data has (almost) no mass, i.e. whose
#   log p_data lies below the ``level`` quantile of log p_data(X), X ~ p_data. The data
#   itself puts a fraction ``level`` there; bridges and diffuse clouds put more;
# - recall: how the samples share their mass among the components. E[r_k(X)] = w_k for
#   X ~ p_data, where r_k(x) = P(k | x) are the exact responsibilities, so the total
#   variation between the samples' mean responsibilities and the weights is 0 for the data
#   (up to sampling noise) and grows when modes are dropped or over-filled.

OFF_SUPPORT_LEVEL = 0.01  # the data's own fraction below the threshold (1% quantile)


def log_density_threshold(
    mixture,
    level: float = OFF_SUPPORT_LEVEL,
    n: int = 200_000,
    generator: torch.Generator | None = None,
) -> float:
    """The ``level`` quantile of log p_data(X), X ~ p_data, from n exact draws (float64),
    with the exact mixture density of Sec. 2 (Song et al. 2023).

    Below it lies a fraction ``level`` of the data's own mass: the edge of its support used
    by ``off_support_fraction``. The quantile's standard error is about
    sqrt(level (1 - level) / n) in probability (2e-4 at the defaults).
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    x = mixture.sample(n, g, dtype=torch.float64)
    return float(torch.quantile(mixture.log_prob(x), level))


def off_support_fraction(x: Tensor, mixture, threshold: float | None = None) -> float:
    """Fraction of samples x (n, d) with log p_data(x) below ``threshold``: 1 - precision,
    precision in the sense of Kynkäänniemi et al. 2019 with the exact support of p_data.

    ``threshold`` defaults to ``log_density_threshold(mixture)`` (the data's own 1%
    quantile), so samples of p_data itself give about 0.01. Samples on bridges between modes
    or in a diffuse cloud around them, where p_data is negligible, raise it.
    """
    threshold = log_density_threshold(mixture) if threshold is None else threshold
    logp = mixture.log_prob(_as_points(x, mixture.dim))
    return float((logp < threshold).double().mean())


def mode_weights(x: Tensor, mixture) -> Tensor:
    """The mass each component receives from samples x (n, d): mean over the samples of the
    exact responsibilities r_k(x) = P(k | x) under p_data (Sec. 2, Song et al. 2023, at
    t = 0), shape (K,), float64.

    For x ~ p_data its expectation is exactly the mixture weights w_k.
    """
    return mixture.responsibilities(_as_points(x, mixture.dim), 0.0).mean(0)


def mode_coverage_error(x: Tensor, mixture) -> float:
    """Total variation between the samples' mode weights and the mixture weights:
    1/2 sum_k abs(mean_i r_k(x_i) - w_k), in [0, 1]: 1 - recall (mode coverage, in the sense of
    Kynkäänniemi et al. 2019, from the exact posterior).

    0 for p_data itself up to sampling noise (about sqrt(K / n) / 2 at most); a sampler that
    drops a component of weight w_k scores at least about w_k / 2.
    """
    return float(0.5 * (mode_weights(x, mixture) - mixture.weights).abs().sum())


def mixture_scores(x: Tensor, mixture, threshold: float | None = None) -> dict[str, float]:
    """``off_support`` (1 - precision) and ``mode_tv`` (1 - recall) of samples x of a
    ``GaussianMixture``: the two exact measures above (Kynkäänniemi et al. 2019)."""
    return {
        "off_support": off_support_fraction(x, mixture, threshold),
        "mode_tv": mode_coverage_error(x, mixture),
    }


def _as_points(x: Tensor, dim: int) -> Tensor:
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"need samples of shape (n, {dim}), got {tuple(x.shape)}")
    return x.detach().cpu().double()
