"""Toy data: the Gaussian mixture's closed forms (density, score, denoiser, conditional,
sampling) against independent computations, its JSON format, and the named toys."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from cmedu import EPS, TOYS, GaussianMixture, SampleToy, T, toy_data


def _times(B: int, seed: int) -> torch.Tensor:
    """Per-sample times log-uniform over [eps, T], with both endpoints included."""
    g = torch.Generator().manual_seed(seed)
    u = torch.rand(B, generator=g, dtype=torch.float64)
    t = torch.exp(math.log(EPS) + u * (math.log(T) - math.log(EPS)))
    t[0], t[-1] = EPS, T
    return t


@pytest.mark.parametrize("d", [1, 2, 5])
def test_score_is_gradient_of_log_prob(random_mixture, d):
    gm = random_mixture(d, K=4, seed=d)
    g = torch.Generator().manual_seed(10 + d)
    x = 1.5 * torch.randn(64, d, generator=g, dtype=torch.float64)
    t = _times(64, seed=d)
    x.requires_grad_(True)
    (grad,) = torch.autograd.grad(gm.log_prob(x, t).sum(), x)
    score = gm.score(x.detach(), t)
    assert score.dtype == torch.float64
    torch.testing.assert_close(score, grad, rtol=1e-10, atol=1e-12)
    # A scalar t gives the same as a constant per-sample t.
    for t0 in (EPS, 0.7, T):
        torch.testing.assert_close(
            gm.score(x.detach(), t0), gm.score(x.detach(), torch.full((64,), t0).double())
        )


@pytest.mark.parametrize("d", [1, 2, 5])
def test_log_prob_matches_the_mixture_density(random_mixture, mixture_pdf, d):
    gm = random_mixture(d, K=3, seed=20 + d)
    x = torch.randn(32, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64)
    t = _times(32, seed=3)
    expected = np.log(mixture_pdf(gm, x.numpy(), t.numpy()))
    np.testing.assert_allclose(gm.log_prob(x, t).numpy(), expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 5])
def test_denoiser_is_tweedie(random_mixture, d):
    """E[x_0 | x_t = x] = x + t^2 grad log p_t(x) (Tweedie's formula)."""
    gm = random_mixture(d, K=4, seed=30 + d)
    x = 2 * torch.randn(64, d, generator=torch.Generator().manual_seed(d), dtype=torch.float64)
    t = _times(64, seed=4)
    tweedie = x + t[:, None] ** 2 * gm.score(x, t)
    torch.testing.assert_close(gm.denoise(x, t), tweedie, rtol=1e-9, atol=1e-9)


def test_denoiser_is_posterior_mean_by_quadrature(mixture_1d, mixture_pdf):
    """D(x, t) = int x0 p(x0) N(x; x0, t^2) dx0 / int p(x0) N(x; x0, t^2) dx0 in 1D."""
    gm = mixture_1d
    for x, t in [(-0.8, 0.05), (0.1, 0.3), (0.9, 1.0), (2.5, 3.0)]:

        def joint(x0, power, x=x, t=t):
            return x0**power * mixture_pdf(gm, [x0]) * stats.norm.pdf(x, x0, t)

        num = integrate.quad(joint, -6, 6, args=(1,), points=[-1, 0.3, 1.2, x], limit=200)[0]
        den = integrate.quad(joint, -6, 6, args=(0,), points=[-1, 0.3, 1.2, x], limit=200)[0]
        got = gm.denoise(torch.tensor([[x]], dtype=torch.float64), t).item()
        assert got == pytest.approx(num / den, rel=1e-8, abs=1e-10)


@pytest.mark.parametrize("t", [0.0, EPS, 0.5, 5.0])
def test_log_prob_integrates_to_one_in_1d(mixture_1d, t):
    def density(x):
        return math.exp(mixture_1d.log_prob(torch.tensor([[x]], dtype=torch.float64), t).item())

    # piecewise around the (possibly narrow) peaks at -1, 0.3 and 1.2
    pieces = [(-np.inf, -2), (-2, 0), (0, 1), (1, 3), (3, np.inf)]
    mass = sum(integrate.quad(density, a, b, limit=500)[0] for a, b in pieces)
    assert mass == pytest.approx(1.0, abs=1e-8)


def test_sample_matches_the_mixture_cdf(mixture_1d, mixture_cdf, gen):
    x = mixture_1d.sample(4000, gen(0), dtype=torch.float64)[:, 0].numpy()
    assert stats.kstest(x, lambda v: mixture_cdf(mixture_1d, v)).pvalue > 0.01
    # The same test has power: shifting the samples by a fifth of a std is detected.
    assert stats.kstest(x + 0.05, lambda v: mixture_cdf(mixture_1d, v)).pvalue < 1e-3


def test_sample_projections_match_in_2d(gen):
    """Any projection u.x of an isotropic mixture is the 1D mixture sum w_k N(u.m_k, s_k^2)."""
    gm = GaussianMixture([[-1.0, 0.5], [0.8, -0.3], [0.2, 1.0]], [0.4, 0.3, 0.5], [0.3, 0.5, 0.2])
    x = gm.sample(4000, gen(1), dtype=torch.float64).numpy()
    for angle in (0.0, 1.0, 2.0):
        u = np.array([math.cos(angle), math.sin(angle)])
        mu, s, w = gm.means.numpy() @ u, gm.stds.numpy(), gm.weights.numpy()

        def cdf(v, mu=mu, w=w, s=s):
            return (w * stats.norm.cdf((np.asarray(v)[..., None] - mu) / s)).sum(-1)

        assert stats.kstest(x @ u, cdf).pvalue > 0.01


def test_sample_dtype_and_determinism(mixture_1d, gen):
    a = mixture_1d.sample(10, gen(3))
    assert a.dtype == torch.float32 and a.shape == (10, 1)
    assert torch.equal(a, mixture_1d.sample(10, gen(3)))
    assert not torch.equal(a, mixture_1d.sample(10, gen(4)))


@pytest.mark.parametrize("dims", [[0], [1], [0, 2]])
def test_conditional_is_bayes_rule_on_a_grid(dims):
    """p(x_free | x_dims = v) = p(v, x_free) / int p(v, x_free') dx_free', on a grid."""
    gm = GaussianMixture(
        [[-1.0, 0.5, 0.0], [0.8, -0.3, 0.4], [0.2, 1.0, -0.5]], [0.4, 0.3, 0.5], [0.3, 0.5, 0.2]
    )
    values = torch.tensor([0.3, -0.2], dtype=torch.float64)[: len(dims)]
    free = [i for i in range(3) if i not in dims]
    cond = gm.conditional(dims, values)
    assert cond.dim == len(free)
    axes = [torch.linspace(-4, 4, 401 if len(free) == 1 else 161, dtype=torch.float64)] * len(free)
    mesh = torch.stack(torch.meshgrid(*axes, indexing="ij"), -1).reshape(-1, len(free))
    full = torch.empty(mesh.shape[0], 3, dtype=torch.float64)
    full[:, dims], full[:, free] = values, mesh
    joint = gm.log_prob(full).exp()
    cell = float(axes[0][1] - axes[0][0]) ** len(free)
    bayes = joint / (joint.sum() * cell)
    np.testing.assert_allclose(cond.log_prob(mesh).exp().numpy(), bayes.numpy(), atol=1e-6)


def test_json_round_trip(tmp_path, random_mixture):
    gm = random_mixture(3, K=5, seed=7)
    path = tmp_path / "mix.json"
    gm.to_json(path)
    back = GaussianMixture.from_json(path)
    for a, b in [(gm.means, back.means), (gm.stds, back.stds), (gm.weights, back.weights)]:
        assert torch.equal(a, b)
    x = torch.randn(8, 3, dtype=torch.float64)
    assert torch.equal(gm.log_prob(x, 0.5), back.log_prob(x, 0.5))
    assert isinstance(toy_data(str(path)), GaussianMixture)


@pytest.mark.parametrize(
    "text, message",
    [
        ("{not json", "not valid JSON"),
        ('{"means": [[0.0, 1.0]]}', "missing \\['stds'\\]"),
        ("[1, 2, 3]", "missing"),
        ('{"means": [0.0, 1.0], "stds": [1.0, 1.0]}', "means must have shape \\(K, d\\)"),
        ('{"means": [[0.0], [1.0]], "stds": [1.0]}', "2 components but stds has 1"),
        ('{"means": [[0.0], [1.0]], "stds": [1.0, 1.0], "weights": [1]}', "weights has 1"),
        ('{"means": [[0.0], [1.0]], "stds": [1.0, -1.0]}', "std must be > 0"),
        ('{"means": [[0.0], [1.0]], "stds": [1.0, 1.0], "weights": [1, -1]}', "non-negative"),
        ('{"means": [[0.0], [1.0, 2.0]], "stds": [1.0, 1.0]}', "malformed mixture"),
    ],
)
def test_malformed_json_raises_value_error_naming_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(ValueError, match=message):
        GaussianMixture.from_json(path)
    with pytest.raises(ValueError, match=message):
        toy_data(str(path))


def test_missing_json_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.json"):
        GaussianMixture.from_json(tmp_path / "nope.json")


def test_constructor_rejects_bad_parameters():
    with pytest.raises(ValueError, match="non-negative"):
        GaussianMixture([[0.0], [1.0]], [1.0, 1.0], [0.5, -0.5])
    with pytest.raises(ValueError, match="positive sum"):
        GaussianMixture([[0.0], [1.0]], [1.0, 1.0], [0.0, 0.0])
    with pytest.raises(ValueError, match="std must be > 0"):
        GaussianMixture([[0.0], [1.0]], [1.0, 0.0])
    gm = GaussianMixture([[0.0, 0.0]], [1.0])
    with pytest.raises(ValueError, match=r"\(\.\.\., 2\)"):
        gm.score(torch.zeros(4, 3), 1.0)


def test_weights_are_normalised():
    gm = GaussianMixture([[0.0], [1.0]], [1.0, 1.0], [1.0, 3.0])
    assert gm.weights.tolist() == [0.25, 0.75]


def test_named_mixtures_have_their_documented_geometry():
    eight = toy_data("8gaussians")
    assert isinstance(eight, GaussianMixture) and eight.means.shape == (8, 2)
    np.testing.assert_allclose(eight.means.norm(dim=1).numpy(), 1.0, rtol=1e-15)
    angles = np.sort(np.mod(torch.atan2(eight.means[:, 1], eight.means[:, 0]).numpy(), 2 * np.pi))
    np.testing.assert_allclose(np.diff(angles), 2 * np.pi / 8, rtol=1e-12)
    grid = toy_data("25gaussians")
    assert isinstance(grid, GaussianMixture) and grid.means.shape == (25, 2)
    levels = [-1.0, -0.5, 0.0, 0.5, 1.0]
    assert sorted({round(v, 12) for v in grid.means[:, 0].tolist()}) == levels
    assert sorted({round(v, 12) for v in grid.means[:, 1].tolist()}) == levels


@pytest.mark.parametrize("name", ["checkerboard", "two_moons", "swiss_roll"])
def test_sample_only_toys_are_deterministic_2d_and_in_range(name, gen):
    toy = toy_data(name)
    assert isinstance(toy, SampleToy)
    x = toy.sample(2000, gen(0))
    assert x.shape == (2000, 2) and x.dtype == torch.float32 and bool(torch.isfinite(x).all())
    assert torch.equal(x, toy.sample(2000, gen(0)))
    assert not torch.equal(x, toy.sample(2000, gen(1)))
    assert float(x.abs().max()) < 1.2  # scaled to about [-1, 1]
    assert 0.2 < float(x.std(0).min())  # and not collapsed


def test_checkerboard_lies_on_the_dark_squares(gen):
    x = toy_data("checkerboard").sample(5000, gen(2), dtype=torch.float64)
    assert bool(((x >= -1) & (x <= 1)).all())
    col, row = torch.floor(2 * (x[:, 0] + 1)), torch.floor(2 * (x[:, 1] + 1))
    assert bool(((col + row) % 2 == 0).all())
    # ... and all 8 dark squares are visited about equally often (chi-square).
    counts = torch.bincount((4 * row + col).long(), minlength=16).numpy()
    dark = counts[counts > 0]
    assert len(dark) == 8 and stats.chisquare(dark).pvalue > 0.001


def test_unknown_toy_name_lists_the_choices():
    with pytest.raises(ValueError, match="unknown data 'nope'") as err:
        toy_data("nope")
    for name in ["8gaussians", "25gaussians", "checkerboard", "two_moons", "swiss_roll"]:
        assert name in str(err.value)
    assert set(TOYS) == {"8gaussians", "25gaussians", "checkerboard", "two_moons", "swiss_roll"}


def test_json_file_is_plain_lists(tmp_path):
    """The format documented in ``from_json``: keys means, stds, weights holding lists."""
    path = tmp_path / "m.json"
    GaussianMixture([[0.0, 1.0]], [0.5]).to_json(path)
    assert json.loads(path.read_text()) == {"means": [[0.0, 1.0]], "stds": [0.5], "weights": [1.0]}
