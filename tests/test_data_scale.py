"""Data of any scale (cmedu.data_scale): the standardized mixture and the scale are exact,
the wrapped consistency function is the data's own in closed form, and a run on a mixture
at scale 0.01 or 100 learns what it learns at scale 1, stored in the run and used by
sampling after loading."""

from __future__ import annotations

import math

import pytest
import torch

from cmedu import EPS, GaussianMixture, TrainConfig, Trainer, energy_distance, load_run, sample
from cmedu.constants import SIGMA_DATA
from cmedu.data_scale import DataScaled, StandardizedData, fit_scale
from cmedu.toys import random_mixture


def _scaled(mix: GaussianMixture, a: float) -> GaussianMixture:
    return GaussianMixture(a * mix.means, a * mix.stds, mix.weights)


@pytest.mark.parametrize("a", [0.01, 1.0, 100.0])
def test_fit_scale_is_exact_for_a_mixture_and_standardizes_to_sigma_data(a):
    mix = _scaled(random_mixture(8, 2), a)
    c, s = fit_scale(mix)
    x = mix.sample(400_000, torch.Generator().manual_seed(0), dtype=torch.float64)
    torch.testing.assert_close(
        torch.tensor(c, dtype=torch.float64), x.mean(0), rtol=0, atol=5 * a * 2e-3
    )
    assert s == pytest.approx(x.std(0).pow(2).mean().sqrt().item() / SIGMA_DATA, rel=5e-3)
    y = StandardizedData(mix, c, s).sample(400_000, torch.Generator().manual_seed(1))
    assert y.double().std(0).pow(2).mean().sqrt().item() == pytest.approx(SIGMA_DATA, rel=5e-3)


def test_data_scaled_is_the_consistency_function_in_data_units():
    # For N(m, s^2) in 1D, f*(x, t) = m + (x - m) sqrt(s^2 + eps^2) / sqrt(s^2 + t^2)
    # (the PF-ODE trajectory x_t - m proportional to sqrt(s^2 + t^2)). Wrapping the
    # standardized data's f* must give the data's f* with eps in data units, S eps.
    m, s, c, S = 30.0, 7.0, 20.0, 11.0
    m_y, s_y = (m - c) / S, s / S

    def f_y(y, t):
        return m_y + (y - m_y) * math.sqrt(s_y**2 + EPS**2) / torch.sqrt(s_y**2 + t[:, None] ** 2)

    class Model(torch.nn.Module):
        def forward(self, y, t):
            return f_y(y, torch.as_tensor(t, dtype=y.dtype).expand(len(y)))

    x = torch.linspace(-50, 100, 7, dtype=torch.float64)[:, None]
    t = torch.full((7,), 3.0, dtype=torch.float64)
    f_x = DataScaled(Model(), [c], S)(x, t)
    expected = m + (x - m) * math.sqrt(s**2 + (S * EPS) ** 2) / torch.sqrt(s**2 + t[:, None] ** 2)
    torch.testing.assert_close(f_x, expected, rtol=1e-6, atol=1e-6)
    assert DataScaled(Model(), [c], S).T == pytest.approx(80 * S)


@pytest.mark.slow
def test_a_mixture_at_scale_001_or_100_trains_as_at_scale_1(tmp_path):
    """With standardize on, the standardized data is the same at every scale, so a run
    learns the same map: energy distance / scale after 300 iCT steps, measured 0.0257 at
    scales 0.01, 1 and 100 (equal to 7 digits). Without it: 18.7 at scale 0.01 (eps = 0.002
    is no longer small against the data), 0.39 at scale 100 (the prior N(0, 80^2) is
    narrower than the data), and 0.114 at scale 1 (this mixture's std is 0.4, not 0.5).
    The scale is stored in the run: the loaded model samples in data units."""
    base = random_mixture(6, 2)
    cfg = dict(method="ict", steps=300, batch_size=256, hidden=64, lr=2e-3, seed=0)

    def relative_energy(a, standardize, out=None):
        mix = _scaled(base, a)
        trainer = Trainer(
            TrainConfig(data="family-6", standardize=standardize, **cfg), out, "cpu", data=mix
        )
        trainer.run(progress=False)
        model = load_run(out)[0] if out else trainer.ema
        if standardize and out is None:
            model = DataScaled(model, trainer.config.data_center, trainer.config.data_scale)
        x = sample(model, (3000, 2), generator=torch.Generator().manual_seed(5))
        ref = mix.sample(3000, torch.Generator().manual_seed(7))
        return energy_distance(x.double(), ref.double()) / a

    unit = relative_energy(1.0, True)
    assert relative_energy(0.01, True) == pytest.approx(unit, rel=1e-3)
    assert relative_energy(100.0, True, tmp_path / "run") == pytest.approx(unit, rel=1e-3)
    assert relative_energy(100.0, False) > 3 * unit
    assert relative_energy(0.01, False) > 100 * unit


def test_standardize_refuses_a_teacher_trained_in_data_units(tmp_path):
    cfg = TrainConfig(data="family-6", method="cd", standardize=True, teacher=str(tmp_path))
    with pytest.raises(ValueError, match="--standardize.*--teacher"):
        Trainer(cfg, None, "cpu", data=random_mixture(6, 2))


def test_editing_and_interpolation_use_the_scaled_models_time_range():
    """A DataScaled model (s = 11) lives on [s eps, s T]: Algorithm 4 accepts times up to
    s T = 880 without being told, keeps the unmasked coordinate exactly, and interpolation
    evaluates f at s T, not at the paper's T = 80."""
    from cmedu.editing import interpolate, zero_shot_edit

    class Shrink(torch.nn.Module):  # f(y, t) = y / (1 + t), any map will do here
        def forward(self, y, t):
            return y / (1 + torch.as_tensor(t, dtype=y.dtype).reshape(-1, 1))

    model = DataScaled(Shrink(), [20.0, -5.0], 11.0)
    y = torch.tensor([[3.0, 40.0]], dtype=torch.float64).repeat(4, 1)
    mask = torch.tensor([1.0, 0.0], dtype=torch.float64)  # generate x_1, keep x_2
    g = torch.Generator().manual_seed(0)
    out = zero_shot_edit(model, y, mask, ts=[model.T, 11.0], generator=g)
    assert torch.equal(out[:, 1], y[:, 1]) and out[:, 0].isfinite().all()
    with pytest.raises(ValueError, match="ts"):
        zero_shot_edit(model, y, mask, ts=[2 * model.T, 11.0])
    z = torch.randn(4, 2, generator=g, dtype=torch.float64) * model.T
    ends = interpolate(model, z, -z, [0.0, 1.0])
    torch.testing.assert_close(ends[0], model(z, model.T))
