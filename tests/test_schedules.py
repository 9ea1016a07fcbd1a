"""The schedules of CT (CM App. C: N(k), mu(k)) and iCT (doubling curriculum, lognormal
index distribution, lambda = 1/(t_{n+1} - t_n)) against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from cmedu import ct_mu, ct_N, ict_N, ict_weight, karras_timesteps, lognormal_index_probs

K = 800_000  # CIFAR-10 CT (Table 3)


def test_ct_N_starts_at_s0_and_ends_at_s1_plus_one():
    assert ct_N(0, K) == 2  # ceil(sqrt(s0^2) - 1) + 1 = s0
    assert ct_N(K, K) == 151  # ceil(sqrt((s1 + 1)^2) - 1) + 1 = s1 + 1
    assert ct_N(0, K, s0=5, s1=40) == 5 and ct_N(K, K, s0=5, s1=40) == 41


def test_ct_N_in_the_middle_by_hand():
    # k = K/2: sqrt(0.5 (151^2 - 2^2) + 2^2) = sqrt(11402.5) = 106.78; ceil(105.78) + 1 = 107
    assert ct_N(K // 2, K) == 107
    # k = K/4: sqrt(0.25 (151^2 - 4) + 4) = sqrt(5703.25) = 75.52; ceil(74.52) + 1 = 76
    assert ct_N(K // 4, K) == 76
    # k = 1: sqrt(22797 / 800000 + 4) = 2.0071; ceil(1.0071) + 1 = 3: N leaves s0 at once
    assert ct_N(1, K) == 3


def test_ct_N_never_decreases():
    Ns = [ct_N(k, 1000) for k in range(1001)]
    assert all(a <= b for a, b in zip(Ns, Ns[1:]))
    assert Ns[0] == 2 and Ns[-1] == 151


def test_ct_mu_paper_variant_starts_at_mu0():
    assert ct_mu(0, K) == pytest.approx(0.9, rel=1e-15)  # exp(2 ln 0.9 / 2)
    assert ct_mu(K, K) == pytest.approx(math.exp(2 * math.log(0.9) / 151), rel=1e-15)
    assert ct_mu(K // 2, K) == pytest.approx(0.9 ** (2 / 107), rel=1e-15)


def test_ct_mu_code_variant_starts_at_mu0_squared():
    assert ct_mu(0, K, variant="code") == pytest.approx(0.81, rel=1e-14)  # exp(2 ln 0.9 / 1)
    assert ct_mu(K, K, variant="code") == pytest.approx(0.9 ** (2 / 150), rel=1e-15)


def test_ct_mu_grows_towards_one():
    mus = [ct_mu(k, 1000) for k in range(0, 1001, 50)]
    assert all(a <= b for a, b in zip(mus, mus[1:])) and 0.998 < mus[-1] < 1


def test_ct_mu_unknown_variant_raises():
    with pytest.raises(ValueError, match="'papr'"):
        ct_mu(0, K, variant="papr")


def test_ict_N_doubles_every_K_prime_steps():
    """K = 400k, s0 = 10, s1 = 1280: K' = floor(400000 / (log2(128) + 1)) = 50000."""
    K_ict = 400_000
    expected = [11, 21, 41, 81, 161, 321, 641, 1281]
    for stage, N in enumerate(expected):
        k = 50_000 * stage
        assert ict_N(k, K_ict, 10, 1280) == N
        assert ict_N(k + 49_999, K_ict, 10, 1280) == N  # constant within a stage
    for k in (399_999, 400_000, 1_000_000):
        assert ict_N(k, K_ict, 10, 1280) == 1281  # capped at s1 + 1


def test_ict_N_with_short_runs():
    # s1/s0 = 8: K' = floor(1000 / 4) = 250, N = 11, 21, 41, 81 (cap).
    assert [ict_N(k, 1000, 10, 80) for k in (0, 249, 250, 500, 750, 999)] == [
        11, 11, 21, 41, 81, 81,
    ]  # fmt: skip


@pytest.mark.parametrize("N", [2, 11, 18, 1281])
def test_lognormal_index_probs_are_normal_cdf_differences(N):
    ts = karras_timesteps(N)
    cdf = stats.norm.cdf(np.log(ts.numpy()), loc=-1.1, scale=2.0)
    expected = np.diff(cdf) / np.diff(cdf).sum()
    p = lognormal_index_probs(ts)
    assert p.shape == (N - 1,) and p.dtype == torch.float64
    np.testing.assert_allclose(p.numpy(), expected, rtol=1e-10, atol=1e-15)
    assert p.sum().item() == pytest.approx(1.0, abs=1e-14) and bool((p >= 0).all())


def test_lognormal_index_probs_peak_near_exp_p_mean():
    """With a fine grid the most likely interval has t near exp(P_mean) = 0.33 per unit of
    ln t: divide by the interval widths in ln t to get the lognormal density."""
    ts = karras_timesteps(1281)
    density = lognormal_index_probs(ts) / torch.diff(torch.log(ts))
    t_mode = ts[int(density.argmax())].item()
    assert abs(math.log(t_mode) - (-1.1)) < 0.02


def test_lognormal_index_probs_with_other_parameters():
    ts = karras_timesteps(40)
    cdf = stats.norm.cdf(np.log(ts.numpy()), loc=0.5, scale=0.7)
    p = lognormal_index_probs(ts, P_mean=0.5, P_std=0.7)
    np.testing.assert_allclose(p.numpy(), np.diff(cdf) / np.diff(cdf).sum(), rtol=1e-10, atol=1e-15)


def test_ict_weight_is_inverse_step():
    ts = karras_timesteps(11)
    w = ict_weight(ts[:-1], ts[1:])
    np.testing.assert_allclose(w.numpy(), 1 / np.diff(_numpy_grid(11)), rtol=1e-12)
    assert w[0].item() > 50 and w[-1].item() < 0.1  # large near eps, small near T


def _numpy_grid(N):
    i = np.arange(N)
    return (0.002 ** (1 / 7) + i / (N - 1) * (80 ** (1 / 7) - 0.002 ** (1 / 7))) ** 7


def test_ct_mu_with_mu0_zero_is_a_stopgrad_target():
    from cmedu.schedules import ct_mu

    assert ct_mu(0, 100, mu0=0.0) == 0.0
    assert ct_mu(50, 100, mu0=0.0, variant="code") == 0.0
