"""Properties of the NCSN++ U-Net F_theta(x; c_noise) in cmedu.networks.unet."""

import math

import pytest
import torch
from torch import nn

from cmedu.constants import CM_FOURIER_SCALE, ICT_FOURIER_SCALE
from cmedu.networks.embedding import FourierEmbedding
from cmedu.networks.unet import (
    UNET_PRESETS,
    Resample,
    UNet,
    count_parameters,
    unet_preset,
)

torch.set_num_threads(1)


def _tiny(res=16, **kw):
    torch.manual_seed(0)
    return unet_preset("tiny", img_resolution=res, **kw)


def _unit_init(model):
    """Re-initialise every conv/linear at unit Xavier scale, so outputs are O(1).

    At construction the last conv of each branch is scaled by 1e-5 (EDM init) and the
    output is ~1e-5; comparisons below want differences well above float32 round-off.
    """
    torch.manual_seed(1)
    for m in model.modules():
        if isinstance(m, nn.Conv2d | nn.Linear):
            nn.init.xavier_uniform_(m.weight)
            nn.init.normal_(m.bias, std=0.1)
    return model


def _inputs(batch=2, res=16):
    g = torch.Generator().manual_seed(2)
    return torch.randn(batch, 3, res, res, generator=g), torch.randn(batch, generator=g)


@pytest.mark.parametrize(
    "name, low, high", [("tiny", 0, 1e6), ("small", 10e6, 20e6), ("paper", 50e6, 60e6)]
)
def test_presets_have_the_documented_parameter_counts(name, low, high):
    n = count_parameters(unet_preset(name))
    assert low <= n < high
    assert set(UNET_PRESETS) == {"tiny", "small", "paper"}


def test_paper_preset_is_the_cifar10_ncsnpp_with_56_4m_parameters():
    model = unet_preset("paper")
    assert round(count_parameters(model) / 1e6, 1) == 56.4
    with torch.no_grad():
        y = model(torch.randn(1, 3, 32, 32), torch.zeros(1))
    assert y.shape == (1, 3, 32, 32)


@pytest.mark.parametrize("res", [8, 16])
def test_tiny_output_has_the_input_shape(res):
    x, c = _inputs(res=res)
    assert _tiny(res)(x, c).shape == x.shape


def test_small_output_has_the_input_shape():
    torch.manual_seed(0)
    model = unet_preset("small", img_resolution=16)
    x, c = _inputs(batch=1, res=16)
    with torch.no_grad():
        assert model(x, c).shape == x.shape


def test_out_channels_and_positional_embedding_and_box_filter():
    model = _tiny(embedding="positional", out_channels=6, resample_filter=(1, 1))
    x, c = _inputs()
    assert model(x, c).shape == (2, 6, 16, 16)


def test_works_at_resolutions_other_than_img_resolution():
    x, c = _inputs(res=8)
    x = torch.cat([x, x], dim=3)  # 8 x 16, divisible by 2
    assert _tiny(16)(x, c).shape == x.shape


def test_rejects_sides_not_divisible_by_the_downsampling_factor():
    x, c = _inputs(res=16)
    with pytest.raises(ValueError, match="divisible by 2"):
        _tiny()(x[..., :15], c)


def test_scalar_c_noise_is_broadcast_over_the_batch():
    model = _unit_init(_tiny()).eval()
    x, _ = _inputs()
    c = torch.tensor(0.3)
    torch.testing.assert_close(model(x, c), model(x, c.expand(2)))


def test_forward_under_bfloat16_autocast_is_close_to_float32():
    model = _unit_init(_tiny()).eval()
    x, c = _inputs()
    with torch.no_grad():
        y32 = model(x, c)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y16 = model(x, c)
    assert y16.shape == x.shape and torch.isfinite(y16).all()
    assert (y16.float() - y32).norm() / y32.norm() < 0.05


def test_channels_last_gives_the_same_output_as_contiguous():
    model = _unit_init(_tiny()).eval()
    x, c = _inputs()
    with torch.no_grad():
        y = model(x, c)
        model = model.to(memory_format=torch.channels_last)
        y_cl = model(x.to(memory_format=torch.channels_last), c)
    torch.testing.assert_close(y_cl, y, rtol=1e-4, atol=1e-4)


def test_dropout_is_active_in_train_mode_and_inactive_in_eval_mode():
    model = _unit_init(_tiny(dropout=0.3))
    x, c = _inputs()
    with torch.no_grad():
        model.train()
        assert not torch.allclose(model(x, c), model(x, c))
        model.eval()
        torch.testing.assert_close(model(x, c), model(x, c), rtol=0, atol=0)


def test_same_dropout_rng_state_gives_the_same_train_output():
    # iCT evaluates student and teacher with the same dropout mask (ref. sheet §8, §12).
    model = _unit_init(_tiny(dropout=0.3)).train()
    x, c = _inputs()
    state = torch.get_rng_state()
    y1 = model(x, c)
    torch.set_rng_state(state)
    torch.testing.assert_close(model(x, c), y1, rtol=0, atol=0)


@pytest.mark.parametrize("scale", [CM_FOURIER_SCALE, ICT_FOURIER_SCALE])
def test_fourier_embedding_uses_the_configured_scale(scale):
    torch.manual_seed(0)
    model = unet_preset("tiny", fourier_scale=scale)
    torch.manual_seed(0)
    unit = FourierEmbedding(model.embed.features.freqs.numel() * 2, scale=1.0)
    # Same random draw, frequencies f ~ N(0, scale^2): exactly scale times the unit draw.
    torch.testing.assert_close(model.embed.features.freqs, scale * unit.freqs)
    # And the features are [cos(2 pi f c), sin(2 pi f c)] (reference in float64; phases reach
    # ~10^2 rad at scale 16, where float32 rounding is ~1e-5).
    c = torch.tensor([0.7, -1.3])
    phase = 2 * math.pi * c.double()[:, None] * model.embed.features.freqs.double()[None, :]
    expected = torch.cat([phase.cos(), phase.sin()], dim=1).float()
    torch.testing.assert_close(model.embed.features(c), expected, rtol=0, atol=1e-4)


def test_fourier_frequencies_have_std_equal_to_scale():
    torch.manual_seed(0)
    freqs = FourierEmbedding(20_000, scale=0.02).freqs
    assert abs(freqs.std().item() / 0.02 - 1) < 0.03


def test_fourier_frequencies_are_saved_in_the_state_dict():
    assert "embed.features.freqs" in _tiny().state_dict()


def test_gradient_reaches_every_parameter_at_initialisation():
    model = _tiny().train()
    x, c = _inputs()
    model(x, c).square().sum().backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


def test_output_depends_on_c_noise():
    model = _unit_init(_tiny()).eval()
    x, c = _inputs()
    with torch.no_grad():
        y0, y1 = model(x, c), model(x, c + 0.5)
    assert (y1 - y0).norm() / y0.norm() > 1e-2


def test_output_starts_near_zero_with_edm_initialisation():
    x, c = _inputs()
    with torch.no_grad():
        assert _tiny()(x, c).abs().max() < 1e-3


@pytest.mark.parametrize("fir", [(1, 3, 3, 1), (1, 1)])
def test_resampling_keeps_a_constant_image_constant(fir):
    x = torch.full((1, 2, 8, 8), 0.7)
    down, up = Resample("down", fir)(x), Resample("up", fir)(x)
    assert down.shape == (1, 2, 4, 4) and up.shape == (1, 2, 16, 16)
    # Away from the zero-padded border the filter has unit DC gain.
    torch.testing.assert_close(down[..., 1:-1, 1:-1], torch.full_like(down[..., 1:-1, 1:-1], 0.7))
    torch.testing.assert_close(up[..., 2:-2, 2:-2], torch.full_like(up[..., 2:-2, 2:-2], 0.7))


def test_unet_has_no_preconditioning_and_is_a_plain_module():
    model = UNet(img_resolution=8, model_channels=16, channel_mult=(1, 1), num_blocks=1)
    assert isinstance(model, nn.Module)
    assert not any("c_skip" in n or "sigma" in n for n, _ in model.named_parameters())
