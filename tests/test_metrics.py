"""The energy distance E(P, Q) = 2 E|X - Y| - E|X - X'| - E|Y - Y'|: its unbiased estimate
by hand, ~0 for one law (relative to its standard error), and the closed form for two
1D normals, from the folded-normal mean."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from cmedu import GaussianMixture, energy_distance
from cmedu.metrics import (
    log_density_threshold,
    mean_pairwise_distance,
    mode_coverage_error,
    mode_weights,
    off_support_fraction,
)
from cmedu.toys import random_mixture


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


# ---------------------------------------------------------------------------------------
# Precision (off-support fraction) and recall (mode-weight total variation) of mixture
# samples, against closed forms.


def _gaussian(d: int, s: float = 0.3) -> GaussianMixture:
    return GaussianMixture(torch.full((1, d), 0.5, dtype=torch.float64), [s])


@pytest.mark.parametrize("d", [2, 8])
def test_log_density_threshold_is_the_chi2_quantile_for_one_gaussian(d):
    # For N(m, s^2 I), log p(x) = -d/2 log(2 pi s^2) - ||x - m||^2 / (2 s^2), and
    # ||x - m||^2 / s^2 ~ chi2_d: the 1% quantile of log p is at the chi2_d 99% point.
    s = 0.3
    thr = log_density_threshold(_gaussian(d, s), level=0.01, n=200_000)
    r2 = 2 * (-d / 2 * math.log(2 * math.pi * s**2) - thr)  # the ||x - m||^2 / s^2 it cuts at
    # The empirical quantile's probability error is sqrt(0.01 * 0.99 / n) = 2.2e-4.
    assert abs(stats.chi2.sf(r2, d) - 0.01) < 5 * 2.2e-4


@pytest.mark.parametrize(("d", "c"), [(2, 1.5), (8, 1.2), (8, 0.8)])
def test_off_support_fraction_of_a_widened_gaussian_is_the_chi2_tail(d, c):
    # Samples of N(m, (c s)^2 I) judged against N(m, s^2 I) with its exact 1% threshold:
    # a fraction P(c^2 chi2_d > q_99) = chi2.sf(q_99 / c^2, d) falls below it.
    s, n = 0.3, 100_000
    q99 = stats.chi2.ppf(0.99, d)
    thr = -d / 2 * math.log(2 * math.pi * s**2) - q99 / 2
    x = 0.5 + c * s * torch.randn(
        n, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64
    )
    expected = stats.chi2.sf(q99 / c**2, d)
    se = math.sqrt(expected * (1 - expected) / n)
    assert abs(off_support_fraction(x, _gaussian(d, s), thr) - expected) < 5 * se + 1e-12


def _mixture(d: int) -> GaussianMixture:
    return random_mixture(3, d)


@pytest.mark.parametrize("d", [2, 8])
def test_samples_of_the_mixture_itself_score_as_the_data(d):
    mix, n = _mixture(d), 40_000
    thr = log_density_threshold(mix, generator=torch.Generator().manual_seed(1))
    x = mix.sample(n, torch.Generator().manual_seed(2), dtype=torch.float64)
    assert abs(off_support_fraction(x, mix, thr) - 0.01) < 5 * math.sqrt(0.01 * 0.99 / n) + 5e-4
    # E r_k(X) = w_k exactly; each mean of n responsibilities in [0, 1] errs by at most
    # sqrt(w_k / n) in standard deviation, so the TV is below 1/2 sum_k 5 sqrt(w_k / n).
    bound = 0.5 * 5 * mix.weights.sqrt().sum().item() / math.sqrt(n)
    assert mode_coverage_error(x, mix) < bound


def test_mode_weights_average_responsibilities_to_the_weights_where_modes_overlap(gen):
    # Two overlapping components: r_k is far from 0 or 1, yet its mean is w_k.
    mix = GaussianMixture([[0.0, 0.0], [0.3, 0.0]], [0.25, 0.25], [0.7, 0.3])
    x = mix.sample(200_000, gen(0), dtype=torch.float64)
    r = mix.responsibilities(x, 0.0)
    assert 0.2 < r[:, 0].std().item()  # soft assignments
    np.testing.assert_allclose(mode_weights(x, mix).numpy(), [0.7, 0.3], atol=4 * 0.5 / 447)


def test_dropping_a_mode_costs_its_weight_in_total_variation():
    # Well separated modes: samples from component 1 only carry responsibility e_1, so the
    # mode weights are (0, 1, 0) and TV = 1/2 (w_0 + (1 - w_1) + w_2) = 1 - w_1.
    means = [[-2.0, 0.0], [0.0, 0.0], [2.0, 0.0]]
    mix = GaussianMixture(means, [0.05] * 3, [0.2, 0.5, 0.3])
    x = 0.05 * torch.randn(5000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    assert mode_coverage_error(x, mix) == pytest.approx(0.5, abs=1e-9)
    np.testing.assert_allclose(mode_weights(x, mix).numpy(), [0, 1, 0], atol=1e-12)


def test_a_bridge_between_modes_is_off_support_but_invisible_to_mode_weights():
    # Points on the segment between two far modes, beyond 4 stds of either, lie where
    # p_data is negligible: all are off support. Split evenly, they leave the mode weights
    # of a two-mode mixture of equal weights unchanged.
    mix = GaussianMixture([[-1.0, 0.0], [1.0, 0.0]], [0.05, 0.05])
    u = torch.linspace(-0.75, 0.75, 1000, dtype=torch.float64)
    x = torch.stack([u, torch.zeros_like(u)], 1)
    assert off_support_fraction(x, mix) == 1.0
    assert mode_coverage_error(x, mix) < 1e-3


def test_mixture_measures_check_shapes():
    with pytest.raises(ValueError, match=r"shape \(n, 2\)"):
        off_support_fraction(torch.zeros(5, 3), _mixture(2))
    with pytest.raises(ValueError, match="level"):
        log_density_threshold(_mixture(2), level=1.5)


@pytest.mark.parametrize("d", [2, 8])
def test_random_mixture_follows_the_family_ranges(d):
    for seed in range(20):
        mix = random_mixture(seed, d)
        K = mix.means.shape[0]
        assert 2 <= K <= 16 and mix.dim == d
        assert mix.means.abs().max() <= 3.0
        assert 0.02 <= mix.stds.min() and mix.stds.max() <= 0.5
        assert mix.weights.min() >= 0.1 / K - 1e-12
    assert torch.equal(random_mixture(5, d).means, random_mixture(5, d).means)


@pytest.mark.parametrize("name", ["energy_distance", "kernel_distance", "mmd2_unbiased"])
def test_sample_distances_name_a_dimension_mismatch_and_too_few_samples(name):
    from cmedu import metrics

    fn = getattr(metrics, name)
    with pytest.raises(ValueError, match=r"y: expected samples of the dimension of x, 2"):
        fn(torch.zeros(5, 2), torch.zeros(5, 3))
    with pytest.raises(ValueError, match=r"x: expected at least 2 samples"):
        fn(torch.zeros(1, 2), torch.zeros(5, 2))
