"""Shared fixtures for the cmedu test suite.

The suite proves the mathematics of the core package against closed forms recomputed
here (numpy/scipy), so most checks run in float64. Torch uses one CPU thread: the tests
are small, and one thread keeps them deterministic and fair to a 2-core machine.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, settings
from scipy import stats

from cmedu import GaussianMixture

torch.set_num_threads(1)

# Property-based tests (tests/test_inputs.py): few examples, no per-example deadline (the
# machine is shared), and derandomised so that every run, in CI too, draws the same inputs.
settings.register_profile(
    "cmedu",
    max_examples=20,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
settings.load_profile("cmedu")


@pytest.fixture
def gen():
    """A factory of seeded CPU generators: ``gen(seed)``."""
    return lambda seed=0: torch.Generator().manual_seed(seed)


@pytest.fixture
def random_mixture():
    """``random_mixture(d, K, seed)``: a mixture with random means, stds in [0.2, 1] and
    Dirichlet weights, built from numpy so that it does not share code with cmedu."""

    def make(d: int, K: int = 4, seed: int = 0) -> GaussianMixture:
        rng = np.random.default_rng(seed)
        means = rng.normal(0.0, 1.0, (K, d))
        stds = rng.uniform(0.2, 1.0, K)
        weights = rng.dirichlet(np.ones(K))
        return GaussianMixture(means, stds, weights)

    return make


@pytest.fixture
def mixture_1d() -> GaussianMixture:
    """A 1D mixture with well separated, moderately narrow modes (three components)."""
    return GaussianMixture([[-1.0], [0.3], [1.2]], [0.2, 0.3, 0.15], [0.3, 0.5, 0.2])


@pytest.fixture
def mixture_cdf():
    """``mixture_cdf(gm, x, t)``: the exact CDF of p_t = p_data * N(0, t^2) for a 1D mixture,
    sum_k w_k Phi((x - m_k) / sqrt(s_k^2 + t^2)), in numpy."""

    def cdf(gm: GaussianMixture, x, t: float = 0.0) -> np.ndarray:
        m = gm.means[:, 0].numpy()
        v = np.sqrt(gm.stds.numpy() ** 2 + t**2)
        x = np.asarray(x, dtype=np.float64)[..., None]
        return (gm.weights.numpy() * stats.norm.cdf((x - m) / v)).sum(-1)

    return cdf


@pytest.fixture
def mixture_pdf():
    """``mixture_pdf(gm, x, t)``: the density of p_t for a mixture in any d, in numpy.

    x has shape (..., d); returns shape x.shape[:-1].
    """

    def pdf(gm: GaussianMixture, x, t: float = 0.0) -> np.ndarray:
        m, s, w = gm.means.numpy(), gm.stds.numpy(), gm.weights.numpy()
        x = np.asarray(x, dtype=np.float64)
        var = s**2 + np.asarray(t, dtype=np.float64)[..., None] ** 2
        sq = ((x[..., None, :] - m) ** 2).sum(-1)
        d = m.shape[1]
        return (w * np.exp(-0.5 * sq / var) / (2 * np.pi * var) ** (d / 2)).sum(-1)

    return pdf
