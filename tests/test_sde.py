"""The SDE of Song et al. 2023, Sec. 2, and the exact posterior of a mixture: the forward
paths have the marginals N(x0, t^2 I) with independent increments; the reverse-time SDE
driven by the exact score ends on the data distribution; posterior draws average to the
exact denoiser (Tweedie) and have the closed-form spread."""

from __future__ import annotations

import torch
from scipy import stats

from cmedu import GaussianMixture, karras_timesteps
from cmedu.sde import forward_sde_paths, reverse_sde_paths

B = 40_000


def test_forward_paths_have_variance_t_squared_and_independent_increments():
    g = torch.Generator().manual_seed(0)
    x0 = torch.zeros(B, 2, dtype=torch.float64)
    ts = torch.tensor([0.0, 0.5, 1.0, 2.0], dtype=torch.float64)
    paths = forward_sde_paths(x0, ts, generator=g)
    assert paths.shape == (4, B, 2) and torch.equal(paths[0], x0)
    for i, t in enumerate(ts[1:].tolist(), start=1):
        var = paths[i].var(0)
        # the sample variance of B normals has relative standard error sqrt(2 / B) = 0.7%
        torch.testing.assert_close(var, torch.full_like(var, t**2), rtol=0.04, atol=0)
    first, later = paths[1], paths[3] - paths[1]
    corr = ((first * later).mean(0) / (first.std(0) * later.std(0))).abs()
    assert (corr < 4 / B**0.5).all()  # independent increments: |corr| within 4 s.e.


def test_reverse_sde_with_the_exact_score_ends_on_the_data():
    mixture = GaussianMixture(means=[[-1.0], [1.5]], stds=[0.3, 0.2], weights=[0.4, 0.6])
    g = torch.Generator().manual_seed(1)
    ts = karras_timesteps(400).flip(0)  # descending, T = 80 to eps
    x_T = torch.randn(4000, 1, generator=g, dtype=torch.float64) * ts[0]
    ends = reverse_sde_paths(x_T, mixture.denoise, ts, generator=g)[-1, :, 0]
    data = mixture.sample(4000, torch.Generator().manual_seed(2), dtype=torch.float64)[:, 0]
    assert stats.ks_2samp(ends.numpy(), data.numpy()).pvalue > 1e-3


def test_reverse_sde_without_the_score_does_not_reach_the_data():
    """The same test fails when the drift is wrong: the check above has power."""
    mixture = GaussianMixture(means=[[-1.0], [1.5]], stds=[0.3, 0.2], weights=[0.4, 0.6])
    g = torch.Generator().manual_seed(1)
    ts = karras_timesteps(400).flip(0)
    x_T = torch.randn(4000, 1, generator=g, dtype=torch.float64) * ts[0]
    ends = reverse_sde_paths(x_T, lambda x, t: x, ts, generator=g)[-1, :, 0]  # score 0
    data = mixture.sample(4000, torch.Generator().manual_seed(2), dtype=torch.float64)[:, 0]
    assert stats.ks_2samp(ends.numpy(), data.numpy()).pvalue < 1e-6


def test_posterior_draws_average_to_the_exact_denoiser():
    mixture = GaussianMixture(means=[[-1.0, 0.0], [1.0, 0.5]], stds=[0.3, 0.2])
    x_t = torch.tensor([[0.1, 0.2], [-2.0, 1.0], [0.8, 0.4]], dtype=torch.float64)
    for t in (0.1, 0.7, 3.0):
        draws = mixture.posterior_sample(x_t, t, B, torch.Generator().manual_seed(3))
        assert draws.shape == (B, 3, 2)
        se = draws.std(0) / B**0.5
        assert ((draws.mean(0) - mixture.denoise(x_t, t)).abs() < 5 * se).all()


def test_posterior_of_one_gaussian_has_the_closed_form_spread():
    s, t = 0.4, 0.9
    one = GaussianMixture(means=[[0.5]], stds=[s])
    draws = one.posterior_sample(torch.tensor([[2.0]], dtype=torch.float64), t, B,
                                 torch.Generator().manual_seed(4))  # fmt: skip
    expected = s**2 * t**2 / (s**2 + t**2)  # posterior variance of N(m, s^2) given x_t
    torch.testing.assert_close(draws.var().item(), expected, rtol=0.04, atol=0)
