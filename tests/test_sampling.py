"""Multistep consistency sampling, CM Algorithm 1: one step is f(x_T, T); later steps re-noise
with std sqrt(tau^2 - eps^2); the time points are validated; default and searched times."""

from __future__ import annotations

import math

import pytest
import torch
from scipy import stats

from cmedu import (
    EPS,
    ConsistencyModel,
    T,
    ToyMLP,
    default_times,
    multistep_sample,
    sample,
    search_times,
)


class Recorder:
    """f(x, t) = 0 at t = T, else x: each later step returns exactly the re-noised point."""

    def __init__(self):
        self.calls = []

    def __call__(self, x, t):
        self.calls.append((x.clone(), float(t)))
        return torch.zeros_like(x) if float(t) == T else x


@pytest.fixture
def model():
    torch.manual_seed(0)
    return ConsistencyModel(ToyMLP(2, 32, 2)).double().eval()


def test_one_step_is_f_of_x_T(model, gen):
    x_T = T * torch.randn(64, 2, generator=gen(0), dtype=torch.float64)
    assert torch.equal(multistep_sample(model, x_T, [T]), model(x_T, T))


def test_two_steps_follow_algorithm_1(model, gen):
    x_T = T * torch.randn(64, 2, generator=gen(0), dtype=torch.float64)
    tau = 0.8
    out = multistep_sample(model, x_T, [T, tau], generator=gen(5))
    z = torch.randn(64, 2, generator=gen(5), dtype=torch.float64)  # the same draw
    x = model(x_T, T)
    expected = model(x + math.sqrt(tau**2 - EPS**2) * z, tau)
    torch.testing.assert_close(out, expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("tau", [0.003, 0.01, 0.5])
def test_renoising_std_is_sqrt_tau2_minus_eps2(tau, gen):
    """x_tau = x + sqrt(tau^2 - eps^2) z: sample std within 5 standard errors of
    sqrt(tau^2 - eps^2), and (at small tau) clearly not tau."""
    f = Recorder()
    n = 200_000
    x_T = torch.zeros(n, 1, dtype=torch.float64)
    out = multistep_sample(f, x_T, [T, tau], generator=gen(1))
    assert [t for _, t in f.calls] == [T, tau]
    target = math.sqrt(tau**2 - EPS**2)
    se = target / math.sqrt(2 * n)
    assert abs(out.std().item() - target) < 5 * se
    if tau < 0.02:
        assert abs(out.std().item() - tau) > 10 * se
    assert stats.kstest(out[:, 0].numpy() / target, "norm").pvalue > 0.01


def test_three_steps_renoise_twice(gen):
    f = Recorder()
    out = multistep_sample(f, torch.zeros(10, 2), [T, 2.0, 0.5], generator=gen(0), return_all=True)
    assert out.shape == (3, 10, 2) and [t for _, t in f.calls] == [T, 2.0, 0.5]
    assert torch.equal(out[0], torch.zeros(10, 2))


@pytest.mark.parametrize("ts", [[T, 1.0, 1.0], [T, 1.0, 2.0], [1.0, T]])
def test_times_must_be_strictly_descending(model, ts):
    with pytest.raises(ValueError, match="strictly descending"):
        multistep_sample(model, torch.zeros(2, 2, dtype=torch.float64), ts)


@pytest.mark.parametrize("ts, bad", [([T, 0.001], 0.001), ([100.0, 1.0], 100), ([T, -1.0], -1)])
def test_times_outside_eps_T_raise_naming_the_value(model, ts, bad):
    with pytest.raises(ValueError, match=rf"ts: expected times in \[eps, T\].* got {bad:g}"):
        multistep_sample(model, torch.zeros(2, 2, dtype=torch.float64), ts)


def test_clip_clamps_every_output(gen):
    def f(x, t):
        return 3 * x

    out = multistep_sample(f, torch.randn(100, 2), [T, 1.0], generator=gen(0), clip=(-1, 1))
    assert float(out.abs().max()) <= 1.0


def test_default_times():
    assert default_times(1).tolist() == [T]
    two = default_times(2).tolist()
    assert two[0] == T
    assert two[1] == pytest.approx(((EPS ** (1 / 7) + T ** (1 / 7)) / 2) ** 7, rel=1e-14)
    assert two[1] == pytest.approx(2.52, abs=0.005)  # the docstring's value
    three = default_times(3).tolist()
    middle = [(EPS ** (1 / 7) + f * (T ** (1 / 7) - EPS ** (1 / 7))) ** 7 for f in (2 / 3, 1 / 3)]
    assert three[0] == T and three[1:] == pytest.approx(middle, rel=1e-14)


def test_sample_draws_from_the_prior_then_runs_algorithm_1(model, gen):
    model = model.float()  # ``sample`` draws float32 noise
    out = sample(model, (50, 2), steps=2, generator=gen(3))
    assert out.shape == (50, 2)
    assert torch.equal(out, sample(model, (50, 2), steps=2, generator=gen(3)))
    g = gen(3)
    x_T = T * torch.randn(50, 2, generator=g)
    expected = multistep_sample(model, x_T, default_times(2), generator=g)
    torch.testing.assert_close(out, expected)


def test_sample_scales_the_prior_by_the_first_time(gen):
    """``sample(..., ts=[40, 1])`` starts from x ~ N(0, 40^2): f(x, ts[0]) must see noise of
    its own level, as the command line's ``sample`` draws it (``ts[0] * randn``)."""
    f = Recorder()
    sample(f, (20000, 1), ts=[40.0, 1.0], generator=gen(0))
    x_first, t_first = f.calls[0]
    assert t_first == 40.0
    assert abs(x_first.std().item() - 40.0) < 5 * 40.0 / math.sqrt(2 * 20000)


def test_search_times_finds_the_minimum_in_log_time():
    """A synthetic quality, unimodal in ln tau: the greedy ternary search finds its minima
    (after 12 iterations the bracket in ln t is (2/3)^12 * 10.6 = 0.08 wide)."""
    targets = [1.7, 0.15]
    calls = []

    def quality(ts):
        calls.append(list(ts))
        return sum((math.log(t) - math.log(g)) ** 2 for t, g in zip(ts[1:], targets))

    ts = search_times(quality, steps=3)
    assert len(ts) == 3 and ts[0] == T
    assert abs(math.log(ts[1]) - math.log(1.7)) < 0.05
    assert abs(math.log(ts[2]) - math.log(0.15)) < 0.05
    assert all(EPS <= c[-1] <= c[-2] for c in calls)  # every candidate in (eps, previous tau)
    assert search_times(quality, steps=1) == [T]
