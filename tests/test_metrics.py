"""The energy distance E(P, Q) = 2 E|X - Y| - E|X - X'| - E|Y - Y'|: its unbiased estimate
by hand, ~0 for one law (relative to its standard error), and the closed form for two
1D normals, from the folded-normal mean."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from cmedu import energy_distance
from cmedu.metrics import mean_pairwise_distance


def _closed_form_normals(m: float) -> float:
    """E(N(0, 1), N(m, 1)). X - Y ~ N(-m, 2), whose absolute value has the folded-normal
    mean s sqrt(2/pi) exp(-m^2 / (2 s^2)) + m (1 - 2 Phi(-m / s)) with s = sqrt(2); and
    E|X - X'| = E|Y - Y'| = 2 / sqrt(pi)."""
    s = math.sqrt(2)
    cross = s * math.sqrt(2 / math.pi) * math.exp(-(m**2) / (2 * s**2))
    cross += m * (1 - 2 * stats.norm.cdf(-m / s))
    return 2 * cross - 2 * (2 / math.sqrt(math.pi))


def _replicates(m: float, n: int, reps: int, d: int = 1) -> np.ndarray:
    g = torch.Generator().manual_seed(int(100 * m) + d)
    out = []
    for _ in range(reps):
        x = torch.randn(n, d, generator=g, dtype=torch.float64)
        y = torch.randn(n, d, generator=g, dtype=torch.float64)
        y[:, 0] += m
        out.append(energy_distance(x, y))
    return np.array(out)


def test_estimate_is_the_u_statistic_by_hand():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(size=(5, 3))
    dist = lambda a, b: np.linalg.norm(a[:, None] - b[None], axis=-1)  # noqa: E731
    xy = dist(x, y).mean()
    xx = dist(x, x).sum() / (7 * 6)  # diagonal is zero and excluded from the count
    yy = dist(y, y).sum() / (5 * 4)
    got = energy_distance(torch.from_numpy(x), torch.from_numpy(y))
    assert got == pytest.approx(2 * xy - xx - yy, rel=1e-12)


def test_mean_pairwise_distance_by_hand_in_any_chunking():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(11, 2)), rng.normal(size=(4, 2))
    dist = np.linalg.norm(x[:, None] - x[None], axis=-1)
    within = dist.sum() / (11 * 10)
    cross = np.linalg.norm(x[:, None] - y[None], axis=-1).mean()
    for chunk in (1, 2, 3, 4, 11, 4096):
        assert mean_pairwise_distance(torch.from_numpy(x), chunk=chunk) == pytest.approx(
            within, rel=1e-12
        )
        assert mean_pairwise_distance(
            torch.from_numpy(x), torch.from_numpy(y), chunk=chunk
        ) == pytest.approx(cross, rel=1e-12)


def test_precomputed_reference_term_gives_the_same_estimate():
    g = torch.Generator().manual_seed(2)
    x, y = torch.randn(300, 2, generator=g), torch.randn(200, 2, generator=g) + 0.3
    yy = mean_pairwise_distance(y)
    assert energy_distance(x, y, yy=yy) == pytest.approx(energy_distance(x, y), rel=1e-12)


@pytest.mark.parametrize("d", [1, 2])
def test_same_law_gives_zero_within_standard_error(d):
    """The U-statistic is unbiased: over 20 replicates its mean is within 4 standard errors
    of 0, and each replicate is tiny next to a real difference."""
    est = _replicates(0.0, n=500, reps=20, d=d)
    se = est.std(ddof=1) / math.sqrt(len(est))
    assert abs(est.mean()) < 4 * se
    assert np.abs(est).max() < 0.2 * _closed_form_normals(0.5)


@pytest.mark.parametrize("m", [0.5, 1.0, 3.0])
def test_two_normals_match_the_closed_form(m):
    est = _replicates(m, n=1000, reps=10)
    se = est.std(ddof=1) / math.sqrt(len(est))
    exact = _closed_form_normals(m)
    assert exact > 0 and abs(est.mean() - exact) < 4 * se + 1e-12, (est.mean(), exact, se)
    assert se < 0.05 * exact  # the comparison is sharp


def test_energy_distance_is_symmetric_and_positive_for_different_laws():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(800, 2, generator=g)
    y = 0.5 * torch.randn(800, 2, generator=g)  # same mean, different scale
    assert energy_distance(x, y) == pytest.approx(energy_distance(y, x), rel=1e-12)
    assert energy_distance(x, y) > 0.05


@pytest.mark.parametrize(
    "shape_x, shape_y", [((10,), (10,)), ((10, 2), (10, 3)), ((10, 2, 1), (10, 2, 1))]
)
def test_shape_errors_raise(shape_x, shape_y):
    with pytest.raises(ValueError, match="expected samples of (shape \\(n, d\\)|the dimension)"):
        energy_distance(torch.zeros(shape_x), torch.zeros(shape_y))
