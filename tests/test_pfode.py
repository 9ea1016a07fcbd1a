"""The PF-ODE of CM Sec. 2 and its time grid of Sec. 4: the Karras grid against its formula
and the reference sheet, the drift against -t * score (Eq. (3)), and the ODE's defining
property: it transports p_T to p_eps, checked by quantiles (1D, exact) and by KS tests."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from cmedu import (
    EPS,
    RHO,
    GaussianMixture,
    T,
    karras_timesteps,
    pf_ode_drift,
    prior_sample,
    reference_pf_ode,
    score_to_denoiser,
    solve_pf_ode,
)
from cmedu.checks import TIME_RTOL, check_times

# CM Sec. 4 grid for N = 18, ascending, as printed in the reference sheet (Sec. 1).
SHEET_N18 = (
    "0.002 0.0075 0.0229 0.0599 0.1395 0.2964 0.5853 1.088 1.923 3.257 5.315 8.401 "
    "12.91 19.35 28.37 40.79 57.59 80"
).split()


def _karras_numpy(N, eps=EPS, T=T, rho=RHO):
    i = np.arange(1, N + 1)
    return (eps ** (1 / rho) + (i - 1) / (N - 1) * (T ** (1 / rho) - eps ** (1 / rho))) ** rho


@pytest.mark.parametrize("N", [2, 3, 18, 40, 201])
def test_karras_grid_matches_its_formula(N):
    ts = karras_timesteps(N)
    assert ts.dtype == torch.float64 and ts.shape == (N,)
    np.testing.assert_allclose(ts.numpy(), _karras_numpy(N), rtol=1e-13)
    assert ts[0].item() == EPS and ts[-1].item() == T  # exact endpoints
    assert bool((ts[1:] > ts[:-1]).all())  # ascending


def test_karras_grid_with_other_constants():
    ts = karras_timesteps(7, eps=0.01, T=5.0, rho=3.0)
    np.testing.assert_allclose(ts.numpy(), _karras_numpy(7, 0.01, 5.0, 3.0), rtol=1e-13)
    assert ts[0].item() == 0.01 and ts[-1].item() == 5.0


def test_karras_grid_n18_matches_the_reference_sheet():
    ts = karras_timesteps(18).tolist()
    assert len(ts) == len(SHEET_N18)
    for t, printed in zip(ts, SHEET_N18):
        decimals = len(printed.split(".")[1]) if "." in printed else 0
        assert abs(t - float(printed)) <= 0.5 * 10**-decimals + 1e-15, (t, printed)


@pytest.mark.parametrize("N", [1, 0, -3])
def test_karras_grid_needs_two_points(N):
    with pytest.raises(ValueError, match=f"N: expected an integer >= 2.*got {N}"):
        karras_timesteps(N)


def test_karras_grid_needs_eps_below_T():
    with pytest.raises(ValueError, match="eps"):
        karras_timesteps(5, eps=2.0, T=1.0)


def test_check_times_accepts_the_closed_interval():
    ts = check_times("ts", [T, 1.0, EPS], EPS, T, descending=True)
    assert ts.dtype == torch.float64 and ts.tolist() == [T, 1.0, EPS]


def test_check_times_tolerance_is_relative_to_the_bound_crossed():
    inside = [EPS * (1 - TIME_RTOL / 2), T * (1 + TIME_RTOL / 2)]
    check_times("ts", inside, EPS, T)
    check_times("ts", torch.tensor([EPS, T], dtype=torch.float32), EPS, T)  # float32 rounding
    for outside in (EPS * (1 - 2 * TIME_RTOL), T * (1 + 2 * TIME_RTOL)):
        with pytest.raises(ValueError, match="ts: expected times in"):
            check_times("ts", [outside], EPS, T)


@pytest.mark.parametrize("bad", [0.001, 80.5, -1.0, math.nan, math.inf])
def test_check_times_rejects_times_outside_eps_T_naming_the_value(bad):
    with pytest.raises(ValueError, match=rf"ts: expected times in \[eps, T\].*got {bad:g}"):
        check_times("ts", [T, bad, 1.0], EPS, T)


@pytest.mark.parametrize("ts", [[80.0, 1.0, 1.0], [1.0, 80.0], [80.0, 0.5, 2.0]])
def test_check_times_rejects_non_descending_when_asked(ts):
    check_times("ts", ts, EPS, T)  # in range: fine without the ordering requirement
    with pytest.raises(ValueError, match="strictly descending"):
        check_times("ts", ts, EPS, T, descending=True)


def test_drift_is_minus_t_times_the_score(random_mixture):
    """Eq. (3): dx/dt = -t grad log p_t(x), written with a denoiser as (x - D) / t."""
    gm = random_mixture(3, K=3, seed=1)
    x = torch.randn(16, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t = torch.logspace(math.log10(EPS), math.log10(T), 16, dtype=torch.float64)
    expected = -t[:, None] * gm.score(x, t)
    torch.testing.assert_close(pf_ode_drift(gm.denoise, x, t), expected, rtol=1e-9, atol=1e-9)


def test_score_to_denoiser_is_tweedie_for_images():
    """D = x + t^2 s with per-sample t broadcast over (B, C, H, W)."""
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    t = torch.tensor([0.1, 1.0, 10.0], dtype=torch.float64)

    def score(x, t):
        return torch.sin(x)

    D = score_to_denoiser(score)(x, t)
    for b in range(3):
        torch.testing.assert_close(D[b], x[b] + t[b] ** 2 * torch.sin(x[b]))


def test_prior_has_std_T(gen):
    x = prior_sample((20000, 2), generator=gen(0), dtype=torch.float64)
    assert x.shape == (20000, 2)
    # The sample std of 40000 normals is within 4 standard errors T / sqrt(2 n) of T.
    assert abs(x.std().item() - T) < 4 * T / math.sqrt(2 * x.numel())
    assert abs(x.mean().item()) < 4 * T / math.sqrt(x.numel())


def test_pf_ode_flow_preserves_quantiles(mixture_1d, mixture_cdf):
    """In 1D the PF-ODE flow map is monotone and carries p_T to p_t: the CDF value of each
    point is conserved along its trajectory, CDF_t(x_t) = CDF_T(x_T), at every t."""
    x_T = torch.linspace(-200, 200, 41, dtype=torch.float64)[:, None]
    ts = [T, 20.0, 2.0, 0.5, 0.1, 0.01, EPS]
    path = reference_pf_ode(x_T, mixture_1d, ts)
    u = mixture_cdf(mixture_1d, x_T[:, 0].numpy(), T)
    for t, x_t in zip(ts, path):
        np.testing.assert_allclose(mixture_cdf(mixture_1d, x_t[:, 0].numpy(), t), u, atol=1e-8)
    assert bool((path[-1, 1:, 0] > path[-1, :-1, 0]).all())  # order preserved


def test_pf_ode_solution_is_closed_form_for_one_gaussian():
    """For p_data = N(m, s^2 I): x_t = m + (x_T - m) sqrt(s^2 + t^2) / sqrt(s^2 + T^2)."""
    m, s = torch.tensor([0.5, -0.25], dtype=torch.float64), 0.3
    gm = GaussianMixture(m[None], [s])
    x_T = T * torch.randn(8, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ts = [T, 3.0, 0.2, EPS]
    exact = torch.stack(
        [m + (x_T - m) * math.sqrt(s**2 + t**2) / math.sqrt(s**2 + T**2) for t in ts]
    )
    torch.testing.assert_close(reference_pf_ode(x_T, gm, ts), exact, rtol=1e-8, atol=1e-8)


def test_pf_ode_carries_the_prior_to_the_data(mixture_1d, mixture_cdf, gen):
    """With the exact score, Heun with N = 80 maps x_T ~ N(0, T^2) to samples of p_eps
    (KS test against the exact CDF of p_eps = p_data * N(0, eps^2); p >= 0.3 measured)."""
    x_T = prior_sample((4000, 1), generator=gen(0), dtype=torch.float64)
    x = solve_pf_ode(x_T, mixture_1d, karras_timesteps(80).flip(0), "heun")[:, 0].numpy()
    assert stats.kstest(x, lambda v: mixture_cdf(mixture_1d, v, EPS)).pvalue > 0.01


def test_too_few_euler_steps_fail_the_same_ks_test(mixture_1d, mixture_cdf, gen):
    """The KS test above has power: Euler with N = 4 misses p_eps (p ~ 1e-150 measured)."""
    x_T = prior_sample((4000, 1), generator=gen(0), dtype=torch.float64)
    x = solve_pf_ode(x_T, mixture_1d, karras_timesteps(4).flip(0), "euler")[:, 0].numpy()
    assert stats.kstest(x, lambda v: mixture_cdf(mixture_1d, v, EPS)).pvalue < 1e-6
