"""The consistency-model parameterisation, CM Eq. (5) and App. C: the boundary condition
f(x, eps) = x holds exactly for any network, the scalings match their formulas, and the
EDM teacher uses the unshifted ones (EDM Eq. (7))."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from cmedu import (
    EPS,
    SIGMA_DATA,
    ConsistencyModel,
    EDMDenoiser,
    T,
    ToyMLP,
    c_in,
    c_noise,
    c_out,
    c_skip,
    checks,
)

TIMES = np.concatenate([[EPS], np.geomspace(EPS * 1.001, T, 50), [T]])


class ConvNet(nn.Module):
    """A trivial image network F(x_in, c_noise): one conv plus the noise level."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)

    def forward(self, x, c_noise):
        return self.conv(x) + c_noise.reshape(-1, 1, 1, 1)


class Probe(nn.Module):
    """F(x_in, c) = tanh(x_in) (1 + c): known in closed form; records its inputs."""

    def forward(self, x, c):
        self.seen = (x.clone(), c.clone())
        return torch.tanh(x) * (1 + c.reshape(-1, *([1] * (x.ndim - 1))))


def test_scalings_match_app_c():
    s, e, t = SIGMA_DATA, EPS, TIMES
    tt = torch.tensor(t)
    np.testing.assert_allclose(c_skip(tt).numpy(), s**2 / ((t - e) ** 2 + s**2), rtol=1e-14)
    np.testing.assert_allclose(c_out(tt).numpy(), s * (t - e) / np.sqrt(s**2 + t**2), rtol=1e-14)
    np.testing.assert_allclose(c_in(tt).numpy(), 1 / np.sqrt(t**2 + s**2), rtol=1e-14)
    np.testing.assert_allclose(c_noise(tt).numpy(), 0.25 * np.log(t), rtol=1e-14)


def test_scalings_at_the_boundary_are_exactly_one_and_zero():
    t = torch.tensor(EPS, dtype=torch.float64)
    assert c_skip(t).item() == 1.0 and c_out(t).item() == 0.0
    t32 = torch.tensor(EPS, dtype=torch.float32)
    assert c_skip(t32).item() == 1.0 and c_out(t32).item() == 0.0


def test_c_out_denominator_uses_t_not_t_minus_eps():
    t = torch.tensor(1.0, dtype=torch.float64)
    assert c_out(t).item() == pytest.approx(0.5 * (1 - EPS) / np.sqrt(1.25), rel=1e-15)
    assert c_out(t).item() != pytest.approx(0.5 * (1 - EPS) / np.sqrt(0.25 + (1 - EPS) ** 2))


def test_scalings_tend_to_a_pure_network_output_at_large_t():
    t = torch.tensor(1e6, dtype=torch.float64)
    assert c_skip(t).item() < 1e-12 and c_out(t).item() == pytest.approx(SIGMA_DATA, rel=1e-6)


@pytest.mark.parametrize("B", [1, 7, 64])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("train", [True, False])
def test_boundary_condition_is_identity_for_points(B, dtype, train):
    torch.manual_seed(B)
    model = ConsistencyModel(ToyMLP(2, 32, 2, dropout=0.3)).to(dtype).train(train)
    x = 3 * torch.randn(B, 2, dtype=dtype)
    assert torch.equal(model(x, EPS), x)
    assert torch.equal(model(x, torch.full((B,), EPS, dtype=dtype)), x)
    assert not torch.equal(model(x, 1.0), x)  # elsewhere the network does act


@pytest.mark.parametrize("B", [1, 4])
def test_boundary_condition_is_identity_for_images(B):
    torch.manual_seed(0)
    model = ConsistencyModel(ConvNet())
    x = torch.randn(B, 3, 8, 8)
    assert torch.equal(model(x, EPS), x)
    t = torch.tensor([EPS, 1.0, EPS, 5.0])[:B]
    out = model(x, t)
    assert torch.equal(out[t == EPS], x[t == EPS])  # per-sample times: only those at eps


def test_consistency_model_is_eq_5_with_code_c_in_and_c_noise():
    """f(x, t) = c_skip x + c_out F(c_in x, c_noise), per-sample t, in float64."""
    probe = Probe()
    model = ConsistencyModel(probe).double()
    x = torch.randn(4, 2, dtype=torch.float64)
    t = torch.tensor([0.01, 0.5, 3.0, 80.0], dtype=torch.float64)
    out = model(x, t)
    s, e = SIGMA_DATA, EPS
    for b in range(4):
        tb = t[b].item()
        x_in = x[b] / np.sqrt(tb**2 + s**2)
        F = torch.tanh(x_in) * (1 + 0.25 * np.log(tb))
        expected = s**2 / ((tb - e) ** 2 + s**2) * x[b] + s * (tb - e) / np.sqrt(s**2 + tb**2) * F
        torch.testing.assert_close(out[b], expected, rtol=1e-13, atol=1e-13)
    torch.testing.assert_close(probe.seen[1], 0.25 * torch.log(t))  # c_noise of shape (B,)


def test_edm_denoiser_uses_the_unshifted_scalings():
    """EDM Eq. (7): c_skip = s^2 / (t^2 + s^2), c_out = t s / sqrt(s^2 + t^2)."""
    model = EDMDenoiser(Probe()).double()
    x = torch.randn(3, 3, 4, 4, dtype=torch.float64)
    t = torch.tensor([EPS, 0.7, 20.0], dtype=torch.float64)
    out = model(x, t)
    s = SIGMA_DATA
    for b in range(3):
        tb = t[b].item()
        F = torch.tanh(x[b] / np.sqrt(tb**2 + s**2)) * (1 + 0.25 * np.log(tb))
        expected = s**2 / (tb**2 + s**2) * x[b] + tb * s / np.sqrt(s**2 + tb**2) * F
        torch.testing.assert_close(out[b], expected, rtol=1e-13, atol=1e-13)
    assert not torch.equal(out[0], x[0])  # no boundary condition for the teacher


@pytest.mark.parametrize("bad", [0.001, 81.0, [1.0, 100.0]])
@pytest.mark.parametrize("mode", ["eval", "train"])
def test_times_outside_eps_T_raise_in_both_modes(bad, mode):
    model = ConsistencyModel(ToyMLP(2, 16, 1)).train(mode == "train")
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="t: expected times in \\[eps, T\\]"):
        model(x, torch.tensor(bad))
    if not isinstance(bad, list):
        with pytest.raises(ValueError, match="t: expected times in \\[eps, T\\]"):
            model(x, bad)


def test_tensor_times_inside_checked_are_not_read_back():
    # The losses call the model inside checks.checked() with times from their own grid.
    model = ConsistencyModel(ToyMLP(2, 16, 1))
    with checks.checked():
        model(torch.zeros(2, 2), torch.tensor([1.0, 100.0]))  # trusted: no check
        with pytest.raises(ValueError, match="t: expected times"):
            model(torch.zeros(2, 2), 100.0)  # a Python number costs nothing to check


def test_eval_mode_accepts_the_endpoints():
    model = ConsistencyModel(ToyMLP(2, 16, 1)).eval()
    x = torch.randn(2, 2)
    assert torch.equal(model(x, EPS), x)
    assert model(x, T).shape == (2, 2)


def test_per_sample_times_equal_scalar_calls():
    torch.manual_seed(1)
    model = ConsistencyModel(ToyMLP(2, 32, 2)).double().eval()
    x = torch.randn(5, 2, dtype=torch.float64)
    t = torch.tensor([0.002, 0.1, 1.0, 10.0, 80.0], dtype=torch.float64)
    batched = model(x, t)
    for b in range(5):
        torch.testing.assert_close(batched[b : b + 1], model(x[b : b + 1], t[b].item()))
