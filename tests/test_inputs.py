"""Every public entry point names what is wrong with its input (``cmedu.checks``).

Hypothesis draws malformed inputs of each kind (wrong shapes and dimensions, NaN and inf,
times below eps, above T and negative, empty batches, wrong dtypes and devices, images
outside [-1, 1], masks of the wrong shape) and checks that each raises a ValueError or
TypeError whose message starts with "<argument>: expected", the form of every message in
``cmedu.checks``: never a raw torch error, a silent NaN or a result. Valid inputs drawn
from the same spaces must pass. The profile (``conftest.py``) is derandomised and small.
"""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from torch import nn

import cmedu
from cmedu import (
    EPS,
    ConsistencyModel,
    ConsistencyTraining,
    EDMDenoiser,
    GaussianMixture,
    ImprovedConsistencyTraining,
    T,
    ToyMLP,
    checks,
    editing,
)
from cmedu.metrics import frechet_distance, mean_pairwise_distance


def raises_named(name: str, fn, *args, **kw) -> str:
    """fn(*args, **kw) raises ValueError/TypeError with a message "<name>: expected ...".

    Returns the message.
    """
    with pytest.raises((ValueError, TypeError)) as info:
        fn(*args, **kw)
    message = str(info.value)
    assert message.startswith(f"{name}: expected"), message
    return message


# --- Strategies ---------------------------------------------------------------------------

below_eps = st.floats(-1e6, EPS * (1 - 1e-5))
above_T = st.floats(T * (1 + 1e-5), 1e9)
non_finite = st.sampled_from([math.nan, math.inf, -math.inf])
bad_times = st.one_of(below_eps, above_T, non_finite)
good_times = st.floats(EPS, T)
batch = st.integers(1, 5)


@st.composite
def wrong_toy_shapes(draw, d: int = 2):
    """Shapes that are not (B, d), B >= 1: wrong last dimension, rank, or an empty batch."""
    kind = draw(st.sampled_from(["dim", "rank", "empty"]))
    if kind == "dim":
        return (draw(batch), draw(st.integers(1, 6).filter(lambda k: k != d)))
    if kind == "rank":
        rank = draw(st.sampled_from([1, 3, 4]))
        return tuple(draw(st.lists(st.integers(1, 4), min_size=rank, max_size=rank)))
    return (0, d)


@st.composite
def with_non_finite(draw, shape):
    """A tensor of the given shape with NaN, inf or -inf at a drawn position."""
    x = torch.rand(shape) * 2 - 1
    x.view(-1)[draw(st.integers(0, x.numel() - 1))] = draw(non_finite)
    return x


@pytest.fixture(scope="module")
def toy_model():
    torch.manual_seed(0)
    return ConsistencyModel(ToyMLP(2, 16, 1)).eval()


class PixelNet(nn.Module):
    """F(x, c_noise) = a 1 x 1 convolution: an image network small enough for many calls."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x, c_noise):
        return self.conv(x) + c_noise.reshape(-1, 1, 1, 1)


@pytest.fixture(scope="module")
def image_model():
    torch.manual_seed(0)
    return ConsistencyModel(PixelNet(), data_shape=(3, 8, 8)).eval()


def images(B=2, lo=-1.0, hi=1.0):
    return torch.rand(B, 3, 8, 8) * (hi - lo) + lo


# --- Models: ConsistencyModel and EDMDenoiser ---------------------------------------------


@given(shape=wrong_toy_shapes(), t=good_times)
def test_model_names_the_data_shape(toy_model, shape, t):
    message = raises_named("x", toy_model, torch.zeros(shape), t)
    assert "(2,)" in message or "at least one sample" in message


@given(t=bad_times, B=batch, as_tensor=st.booleans(), train=st.booleans())
def test_model_rejects_times_outside_eps_T(toy_model, t, B, as_tensor, train):
    toy_model.train(train)
    t = torch.full((B,), t) if as_tensor else t
    try:
        raises_named("t", toy_model, torch.zeros(B, 2), t)
    finally:
        toy_model.eval()


@given(B=batch, wrong=st.integers(1, 6))
def test_model_rejects_per_sample_times_of_the_wrong_length(toy_model, B, wrong):
    if wrong != B:
        raises_named("t", toy_model, torch.zeros(B, 2), torch.ones(wrong))


@given(dtype=st.sampled_from([torch.int64, torch.int32, torch.bool, torch.uint8]))
def test_model_rejects_non_floating_data(toy_model, dtype):
    raises_named("x", toy_model, torch.zeros(3, 2, dtype=dtype), 1.0)


def test_model_rejects_data_on_another_device(toy_model):
    message = raises_named("x", toy_model, torch.zeros(3, 2, device="meta"), 1.0)
    assert "device" in message


@given(sigma=st.one_of(st.floats(-1e6, 0.0), non_finite), B=batch)
def test_edm_denoiser_rejects_non_positive_noise_levels(sigma, B):
    model = EDMDenoiser(ToyMLP(2, 16, 1))
    raises_named("t", model, torch.zeros(B, 2), sigma)


@given(B=batch, t=good_times, per_sample=st.booleans())
def test_model_accepts_valid_inputs(toy_model, B, t, per_sample):
    x = torch.randn(B, 2)
    out = toy_model(x, torch.full((B,), t) if per_sample else t)
    assert out.shape == (B, 2) and bool(torch.isfinite(out).all())


def test_models_infer_their_data_shape():
    assert ConsistencyModel(ToyMLP(dim=5)).data_shape == (5,)
    unet = cmedu.networks.unet.unet_preset("tiny", img_resolution=8, in_channels=1, out_channels=1)
    assert EDMDenoiser(unet).data_shape == (1, None, None)
    assert ConsistencyModel(nn.Identity()).data_shape is None


# --- Sampling -----------------------------------------------------------------------------


@given(shape=wrong_toy_shapes(), steps=st.integers(1, 3))
def test_sample_names_the_model_data_shape(toy_model, shape, steps):
    raises_named("shape", cmedu.sample, toy_model, shape, steps)


@given(steps=st.integers(-5, 0))
def test_sample_refuses_fewer_than_one_step_in_steps(toy_model, steps):
    message = raises_named("steps", cmedu.sample, toy_model, (4, 2), steps)
    assert f"got {steps}" in message and "N" not in message


@given(ts=st.lists(st.one_of(good_times, bad_times), min_size=1, max_size=4))
def test_multistep_sample_rejects_bad_time_lists(toy_model, ts):
    descending = all(a > b for a, b in zip(ts, ts[1:]))
    in_range = all(EPS <= t <= T for t in ts)
    if descending and in_range:
        out = cmedu.multistep_sample(toy_model, torch.randn(3, 2) * T, ts)
        assert out.shape == (3, 2)
    else:
        raises_named("ts", cmedu.multistep_sample, toy_model, torch.randn(3, 2) * T, ts)


@given(x=with_non_finite((3, 2)))
def test_multistep_sample_rejects_non_finite_noise(toy_model, x):
    raises_named("x_T", cmedu.multistep_sample, toy_model, x, [T])


@given(N=st.integers(-3, 1))
def test_karras_timesteps_needs_two_points(N):
    raises_named("N", cmedu.karras_timesteps, N)


@given(shape=st.one_of(st.just(()), st.lists(st.integers(-3, 0), min_size=1, max_size=3)))
def test_prior_sample_rejects_empty_shapes(shape):
    raises_named("shape", cmedu.prior_sample, shape)


@given(B=batch, steps=st.integers(1, 4))
def test_sample_accepts_valid_inputs(toy_model, B, steps):
    out = cmedu.sample(toy_model, (B, 2), steps, generator=torch.Generator().manual_seed(0))
    assert out.shape == (B, 2) and bool(torch.isfinite(out).all())


def test_search_times_refuses_zero_steps():
    raises_named("steps", cmedu.search_times, lambda ts: 0.0, 0)


# --- The PF-ODE solvers -------------------------------------------------------------------


@pytest.fixture(scope="module")
def mixture():
    return cmedu.toy_data("8gaussians")


@given(x=with_non_finite((3, 2)))
def test_solvers_reject_non_finite_start(mixture, x):
    ts = cmedu.karras_timesteps(4).flip(0)
    raises_named("x_T", cmedu.solve_pf_ode, x, mixture, ts)
    raises_named("x_T", cmedu.reference_pf_ode, x, mixture, ts)


@given(bad=st.one_of(st.floats(-1e3, -1e-6), non_finite), where=st.integers(0, 2))
def test_solvers_reject_negative_or_non_finite_times(mixture, bad, where):
    ts = [10.0, 1.0, 0.1]
    ts[where] = bad
    raises_named("ts", cmedu.solve_pf_ode, torch.zeros(3, 2), mixture, ts)


def test_solve_pf_ode_refuses_t_zero_before_the_end(mixture):
    raises_named("ts", cmedu.solve_pf_ode, torch.zeros(3, 2), mixture, [10.0, 0.0, 0.0])
    out = cmedu.solve_pf_ode(torch.zeros(3, 2), mixture, [10.0, 1.0, 0.0])  # 0 last: fine
    assert bool(torch.isfinite(out).all())


@given(B=batch, wrong=st.integers(1, 6))
def test_solver_steps_name_a_time_of_the_wrong_shape(mixture, B, wrong):
    if wrong != B:
        x, t = torch.zeros(B, 2), torch.ones(wrong)
        raises_named("t", cmedu.euler_step, mixture.denoise, x, t, t / 2)
        raises_named("t", cmedu.heun_step, mixture.denoise, x, t, t / 2)


# --- The Gaussian mixture -----------------------------------------------------------------


@given(which=st.sampled_from(["means", "stds", "weights"]), bad=non_finite)
def test_mixture_rejects_non_finite_parameters(which, bad):
    spec = {"means": [[0.0, 0.0], [1.0, 1.0]], "stds": [0.1, 0.2], "weights": [0.5, 0.5]}
    spec[which] = [[bad, 0.0], [1.0, 1.0]] if which == "means" else [bad, 0.2]
    raises_named(which, GaussianMixture, spec["means"], spec["stds"], spec["weights"])


@given(
    method=st.sampled_from(["score", "denoise", "log_prob", "responsibilities"]),
    t=st.one_of(st.floats(-1e6, -1e-9), non_finite),
)
def test_mixture_methods_reject_negative_or_non_finite_times(mixture, method, t):
    raises_named("t", getattr(mixture, method), torch.zeros(3, 2), t)


@given(method=st.sampled_from(["score", "denoise", "log_prob"]), d=st.integers(1, 5))
def test_mixture_methods_name_the_dimension(mixture, method, d):
    if d != 2:
        raises_named("x", getattr(mixture, method), torch.zeros(3, d), 1.0)


@given(x=with_non_finite((4, 2)))
def test_mixture_score_rejects_non_finite_points(mixture, x):
    raises_named("x", mixture.score, x, 1.0)


@given(n=st.integers(-3, 0), name=st.sampled_from(["8gaussians", "two_moons"]))
def test_toy_samplers_refuse_empty_samples(n, name):
    raises_named("n", cmedu.toy_data(name).sample, n)


@given(t=st.floats(0.0, 1e3), B=batch)
def test_mixture_methods_accept_valid_inputs(mixture, t, B):
    x = torch.randn(B, 2, dtype=torch.float64)
    for method in (mixture.score, mixture.denoise):
        assert bool(torch.isfinite(method(x, t)).all())


# --- Metrics ------------------------------------------------------------------------------


@given(n=st.integers(0, 1), m=st.integers(2, 5))
def test_energy_distance_needs_two_samples_each(n, m):
    raises_named("x", cmedu.energy_distance, torch.zeros(n, 2), torch.zeros(m, 2))
    raises_named("y", cmedu.energy_distance, torch.zeros(m, 2), torch.zeros(n, 2))
    raises_named("x", mean_pairwise_distance, torch.zeros(n, 2))


@given(x=with_non_finite((4, 2)))
def test_energy_distance_rejects_non_finite_samples(x):
    raises_named("x", cmedu.energy_distance, x, torch.randn(5, 2))


@given(dx=st.integers(1, 4), dy=st.integers(1, 4))
def test_energy_distance_needs_samples_of_one_dimension(dx, dy):
    if dx != dy:
        raises_named("y", cmedu.energy_distance, torch.zeros(3, dx), torch.zeros(3, dy))


@given(bad=non_finite)
def test_frechet_distance_rejects_non_finite_statistics(bad):
    mu, sigma = torch.zeros(2).numpy(), torch.eye(2).numpy()
    raises_named("mu2", frechet_distance, mu, sigma, mu + bad, sigma)


# --- Editing ------------------------------------------------------------------------------

TS = [10.0, 1.0]


@given(
    side=st.sampled_from([4, 16]), mask_batch=st.integers(1, 4), channels=st.sampled_from([1, 3])
)
def test_inpaint_names_masks_that_do_not_fit(image_model, side, mask_batch, channels):
    mask = torch.ones(mask_batch, channels, side, side)
    raises_named("mask", cmedu.inpaint, image_model, images(2), mask, TS)


@given(mask_batch=st.integers(3, 5))
def test_inpaint_names_a_mask_batch_that_disagrees(image_model, mask_batch):
    mask = torch.ones(mask_batch, 1, 8, 8)
    raises_named("mask", cmedu.inpaint, image_model, images(2), mask, TS)


@given(scale=st.floats(1.01, 100.0), sign=st.sampled_from([-1.0, 1.0]))
def test_editing_names_images_outside_minus_one_one(image_model, scale, sign):
    y = images(2)
    y[0, 0, 0, 0] = sign * scale
    mask = torch.ones(1, 1, 8, 8)
    message = raises_named("y", cmedu.inpaint, image_model, y, mask, TS)
    assert "[-1, 1]" in message
    raises_named("strokes", cmedu.stroke_edit, image_model, y, TS)
    raises_named("gray", cmedu.colorize, image_model, y, TS)


@given(y=with_non_finite((2, 3, 8, 8)))
def test_editing_rejects_non_finite_images(image_model, y):
    raises_named("y", cmedu.inpaint, image_model, y, torch.ones(1, 1, 8, 8), TS)
    raises_named("x_noisy", cmedu.denoise, image_model, y, 1.0)


@given(ts=st.lists(st.one_of(good_times, bad_times), min_size=1, max_size=3))
def test_editing_rejects_bad_time_lists(image_model, ts):
    if not (all(EPS <= t <= T for t in ts) and all(a > b for a, b in zip(ts, ts[1:]))):
        raises_named("ts", cmedu.inpaint, image_model, images(2), torch.ones(1, 1, 8, 8), ts)


@given(shape=st.sampled_from([(2, 1, 8, 8), (2, 3, 4, 4), (2, 3, 8), (2, 4, 8, 8)]))
def test_editing_names_images_of_the_wrong_shape(image_model, shape):
    raises_named("y", cmedu.inpaint, image_model, torch.zeros(shape), torch.ones(()), TS)


@given(factor=st.integers(-2, 0))
def test_super_resolve_refuses_factors_below_one(image_model, factor):
    raises_named("factor", cmedu.super_resolve, image_model, images(2), factor, TS)


@given(sigma=bad_times)
def test_denoise_names_sigma_outside_eps_T(image_model, sigma):
    raises_named("sigma", cmedu.denoise, image_model, images(2), sigma)


@given(alpha=st.one_of(st.floats(-10, -1e-6), st.floats(1 + 1e-6, 10), non_finite))
def test_interpolate_needs_alphas_in_zero_one(image_model, alpha):
    z = torch.randn(2, 3, 8, 8) * T
    raises_named("alphas", cmedu.interpolate, image_model, z, z.flip(0), [0.0, alpha])
    raises_named("z2", cmedu.interpolate, image_model, z, z[:1], [0.0])


@given(B=st.integers(1, 3), ts=st.lists(good_times, min_size=1, max_size=3, unique=True))
def test_editing_accepts_valid_inputs(image_model, B, ts):
    ts = sorted(ts, reverse=True)
    g = torch.Generator().manual_seed(0)
    mask = editing.inpainting_masks(8, 8)["square"]
    out = cmedu.inpaint(image_model, images(B), mask, ts, generator=g, clip=(-1, 1))
    assert out.shape == (B, 3, 8, 8) and bool(torch.isfinite(out).all())
    low = torch.rand(B, 3, 4, 4) * 2 - 1
    assert cmedu.super_resolve(image_model, low, 2, ts, generator=g).shape == (B, 3, 8, 8)


# --- Losses, EMA, schedules, distances ----------------------------------------------------


@given(shape=wrong_toy_shapes(), method=st.sampled_from(["ct", "ict"]))
def test_losses_name_a_batch_the_model_does_not_take(toy_model, shape, method):
    loss = ConsistencyTraining(K=10) if method == "ct" else ImprovedConsistencyTraining(K=10)
    raises_named("x", loss, toy_model, toy_model, torch.zeros(shape))


@given(k=st.integers(-10, -1))
def test_losses_refuse_negative_steps(toy_model, k):
    raises_named("k", ConsistencyTraining(K=10), toy_model, toy_model, torch.zeros(4, 2), k)


@given(mu=st.one_of(st.floats(-10, -1e-9), st.floats(1 + 1e-9, 10), non_finite))
def test_ema_update_needs_a_rate_in_zero_one(mu):
    net = nn.Linear(2, 2)
    raises_named("mu", cmedu.ema_update, net, net, mu)


def test_ema_update_names_a_model_of_another_architecture():
    raises_named("ema", cmedu.ema_update, nn.Linear(2, 2), nn.Sequential(), 0.5)


@given(
    fn=st.sampled_from([cmedu.ct_N, cmedu.ict_N]),
    k=st.integers(-5, 5),
    K=st.integers(-5, 5),
)
def test_schedules_need_a_step_and_a_positive_total(fn, k, K):
    if k >= 0 and K >= 1:
        assert fn(k, K) >= 2
    else:
        raises_named("k" if k < 0 else "K", fn, k, K)


@given(
    fn=st.sampled_from([cmedu.squared_l2, cmedu.l1, cmedu.pseudo_huber]),
    a=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    b=st.lists(st.integers(1, 3), min_size=1, max_size=3),
)
def test_distances_need_batches_of_one_shape(fn, a, b):
    if a != b:
        raises_named("y", fn, torch.zeros(a), torch.zeros(b))
    else:
        assert fn(torch.zeros(a), torch.zeros(b)).shape == (a[0],)


# --- The checks themselves ----------------------------------------------------------------


def test_messages_name_argument_expectation_and_value():
    message = raises_named("t", checks.check_times, "t", 100.0, EPS, T)
    assert message == "t: expected times in [eps, T] = [0.002, 80], got 100"
    message = raises_named("x", checks.check_data_shape, "x", torch.zeros(4, 3), (2,))
    assert (
        message == "x: expected shape (B, 2) (the model takes data of shape (2,)), got shape (4, 3)"
    )
