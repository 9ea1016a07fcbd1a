"""Score estimation: Lemma 1 of CM (the single-sample score estimate is unbiased given x_t),
by importance sampling and by quadrature; Tweedie's formula both ways; and EDM's denoising
score matching loss, whose minimiser is the posterior mean E[x_0 | x_t]."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from cmedu import (
    SIGMA_DATA,
    DenoisingScoreMatching,
    GaussianMixture,
    denoiser_to_score,
    score_to_denoiser,
    unbiased_score_estimate,
)
from cmedu.score_estimation import edm_weight

MIX = GaussianMixture([[-1.0, 0.5], [0.8, -0.3], [0.2, 1.0]], [0.4, 0.3, 0.5], [0.3, 0.5, 0.2])


def test_unbiased_score_estimate_formula():
    x_t, x0 = torch.randn(4, 3, 2, 2, dtype=torch.float64), torch.randn(4, 3, 2, 2).double()
    t = torch.tensor([0.1, 0.5, 2.0, 80.0], dtype=torch.float64)
    est = unbiased_score_estimate(x_t, x0, t)
    for b in range(4):
        torch.testing.assert_close(est[b], -(x_t[b] - x0[b]) / t[b] ** 2)
    torch.testing.assert_close(unbiased_score_estimate(x_t, x0, 0.5), -(x_t - x0) / 0.25)


@pytest.mark.parametrize("t", [0.3, 1.0, 3.0])
def test_lemma_1_by_importance_sampling(t, gen):
    """grad log p_t(x_t) = E[-(x_t - x_0)/t^2 | x_t]: average the estimate over x_0 ~ p_data
    with self-normalised weights N(x_t; x_0, t^2 I) (the posterior of x_0 given x_t)."""
    M = 200_000
    x0 = MIX.sample(M, gen(0), dtype=torch.float64)
    for x_t in torch.tensor([[0.0, 0.0], [-1.2, 0.9], [1.5, -1.0]], dtype=torch.float64):
        log_w = -((x_t - x0) ** 2).sum(1) / (2 * t**2)
        w = torch.softmax(log_w, 0)  # normalised weights
        est = unbiased_score_estimate(x_t.expand(M, 2), x0, t)
        mean = (w[:, None] * est).sum(0)
        se = ((w[:, None] ** 2) * (est - mean) ** 2).sum(0).sqrt()  # delta method
        exact = MIX.score(x_t, t)
        assert bool(((mean - exact).abs() < 5 * se).all()), (mean, exact, se)
        assert bool((se < 0.05 * (exact.abs() + 1)).all())  # resolved well enough to matter
        # Power: the unconditioned average -E[x_t - x_0]/t^2 is not the score.
        assert bool(((est.mean(0) - exact).abs() > 5 * se).any())


@pytest.mark.parametrize("x_t, t", [(-0.7, 0.1), (0.0, 0.5), (1.3, 2.0)])
def test_lemma_1_by_quadrature_in_1d(x_t, t):
    gm = GaussianMixture([[-1.0], [0.3], [1.2]], [0.2, 0.3, 0.15], [0.3, 0.5, 0.2])

    def p_data(x0):
        return math.exp(gm.log_prob(torch.tensor([[x0]], dtype=torch.float64)).item())

    def integrand(x0, f):
        return f(x0) * p_data(x0) * stats.norm.pdf(x_t, x0, t)

    def est(x0):
        x_t64, x0_64 = torch.tensor(x_t, dtype=torch.float64), torch.tensor(x0).double()
        return unbiased_score_estimate(x_t64, x0_64, t).item()

    lo, hi = x_t - 12 * t, x_t + 12 * t  # the likelihood N(x_t; x_0, t^2) confines x_0
    kw = dict(points=[p for p in (-1.0, 0.3, 1.2, x_t) if lo < p < hi], limit=200)
    num = integrate.quad(integrand, lo, hi, args=(est,), **kw)[0]
    den = integrate.quad(integrand, lo, hi, args=(lambda v: 1.0,), **kw)[0]
    exact = gm.score(torch.tensor([[x_t]], dtype=torch.float64), t).item()
    assert num / den == pytest.approx(exact, rel=1e-7, abs=1e-9)


def test_tweedie_both_ways():
    x = torch.randn(32, 2, dtype=torch.float64)
    t = torch.logspace(-2.7, 1.9, 32, dtype=torch.float64)
    torch.testing.assert_close(denoiser_to_score(MIX.denoise)(x, t), MIX.score(x, t))
    torch.testing.assert_close(score_to_denoiser(MIX.score)(x, t), MIX.denoise(x, t))


def test_edm_weight_is_inverse_squared_c_out():
    sigma = torch.logspace(-3, 2, 20, dtype=torch.float64)
    c_out = sigma * SIGMA_DATA / torch.sqrt(SIGMA_DATA**2 + sigma**2)  # EDM Table 1
    torch.testing.assert_close(edm_weight(sigma), 1 / c_out**2)


def test_dsm_loss_by_hand():
    """lambda(sigma) mean((D(x + sigma z, sigma) - x)^2), lambda = (s^2 + sd^2)/(s sd)^2."""
    x = torch.randn(16, 2, dtype=torch.float64)
    z = torch.randn(16, 2, dtype=torch.float64)
    sigma = torch.logspace(-2, 1, 16, dtype=torch.float64)
    out = DenoisingScoreMatching()(MIX.denoise, None, x, sigma=sigma, z=z)
    D = MIX.denoise(x + sigma[:, None] * z, sigma)
    lam = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
    expected = lam * ((D - x) ** 2).mean(1)
    # float64 throughout (the loss keeps float64 inputs in float64): round-off only,
    # measured below 1e-16 relative.
    np.testing.assert_allclose(out.per_sample.numpy(), expected.numpy(), rtol=1e-12)


def test_sigma_is_lognormal(gen):
    """ln sigma ~ N(P_mean = -1.2, P_std = 1.2) (EDM Sec. 5)."""
    sigma = DenoisingScoreMatching().sample_sigma(5000, gen(0))
    assert stats.kstest(torch.log(sigma).numpy(), stats.norm(-1.2, 1.2).cdf).pvalue > 0.01
    assert stats.kstest(torch.log(sigma).numpy(), stats.norm(-1.0, 1.2).cdf).pvalue < 1e-6


def test_posterior_mean_minimises_dsm(gen):
    """Shifting the exact denoiser by delta raises the expected DSM loss by E[lambda] delta^2
    (Pythagoras: the cross term 2 delta E[D* - x | x_sigma] vanishes)."""
    B, delta = 200_000, 0.1
    g = gen(1)
    x = MIX.sample(B, g, dtype=torch.float64)
    dsm = DenoisingScoreMatching()
    sigma = dsm.sample_sigma(B, g).double()
    z = torch.randn(B, 2, generator=g, dtype=torch.float64)
    exact = dsm(MIX.denoise, None, x, sigma=sigma, z=z).per_sample.double()

    def shifted(x, s):
        return MIX.denoise(x, s) + delta

    worse = dsm(shifted, None, x, sigma=sigma, z=z).per_sample.double()
    diff = worse - exact
    predicted = (edm_weight(sigma) * delta**2).mean().item()
    se = diff.std().item() / math.sqrt(B)
    assert abs(diff.mean().item() - predicted) < 5 * se, (diff.mean().item(), predicted, se)
    assert predicted > 20 * se  # the improvement over any shifted denoiser is resolved
