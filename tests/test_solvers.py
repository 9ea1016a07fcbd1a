"""Euler and Heun (Eq. (6) of CM; EDM Algorithm 1) against the scipy reference solver: the
one-step formulas, the orders of convergence, the cost in denoiser evaluations, the score
form, and the reversibility of the reference solver."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from cmedu import (
    EPS,
    GaussianMixture,
    T,
    euler_step,
    heun_step,
    karras_timesteps,
    reference_pf_ode,
    solve_pf_ode,
)
from cmedu.solvers import consistency_function, solver_chain

# Moderately wide components (stds 0.3-0.5): the error expansion is then in its
# asymptotic regime already at N = 17 on the paper's grid (eps = 0.002, T = 80).
WIDE = GaussianMixture([[-1.0, 0.5], [0.8, -0.3], [0.2, 1.0]], [0.4, 0.3, 0.5], [0.3, 0.5, 0.2])


class Counting:
    """A denoiser that counts its evaluations."""

    def __init__(self, denoiser):
        self.denoiser, self.calls = denoiser, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.denoiser(x, t)


def _order(solver: str, seed: int = 0) -> tuple[float, list[float]]:
    """Slope of log(max error at t = eps) against log(1 / (N - 1)), N = 17 ... 257."""
    g = torch.Generator().manual_seed(seed)
    x_T = T * torch.randn(32, 2, generator=g, dtype=torch.float64)
    exact = reference_pf_ode(x_T, WIDE, [T, EPS])[-1]
    Ns = np.array([17, 33, 65, 129, 257])
    errors = []
    for N in Ns:
        x = solve_pf_ode(x_T, WIDE, karras_timesteps(int(N)).flip(0), solver)
        errors.append((x - exact).norm(dim=-1).max().item())
    return np.polyfit(np.log(1 / (Ns - 1)), np.log(errors), 1)[0], errors


def test_euler_is_first_order():
    """Measured slope 0.94 (0.90-0.98 over seeds); local slopes rise to 0.98 at N = 257."""
    slope, errors = _order("euler")
    assert 0.85 <= slope <= 1.15, (slope, errors)


def test_heun_is_second_order():
    """Measured slope 2.05 (2.04-2.08 over seeds); local slopes fall to 2.01 at N = 257."""
    slope, errors = _order("heun")
    assert 1.85 <= slope <= 2.25, (slope, errors)
    assert errors[-1] < 1e-3  # and it converges to the reference, not to something else


@pytest.mark.parametrize("solver, per_step", [("heun", 2), ("euler", 1)])
def test_solver_cost_in_denoiser_evaluations(solver, per_step):
    """Heun costs 2(N-1) evaluations (EDM's 2N-1 includes a final Euler step to t = 0)."""
    x = torch.randn(5, 2, dtype=torch.float64)
    for N in (2, 18, 40):
        counter = Counting(WIDE.denoise)
        solve_pf_ode(x, counter, karras_timesteps(N).flip(0), solver)
        assert counter.calls == per_step * (N - 1)


def test_heun_step_falls_back_to_euler_at_time_zero():
    counter = Counting(WIDE.denoise)
    x = torch.randn(5, 2, dtype=torch.float64)
    out = heun_step(counter, x, 0.5, 0.0)
    assert counter.calls == 1
    torch.testing.assert_close(out, WIDE.denoise(x, 0.5))  # x + (0 - t)(x - D)/t = D


def test_euler_step_is_eq_6():
    """x_next = x + (t_next - t) (x - D(x, t)) / t, per-sample times, images."""
    x = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    t = torch.tensor([0.5, 2.0, 10.0], dtype=torch.float64)
    t_next = torch.tensor([0.4, 1.0, 9.0], dtype=torch.float64)

    def D(x, t):
        return torch.tanh(x) * t.reshape(-1, 1, 1, 1) ** 0.5

    out = euler_step(D, x, t, t_next)
    for b in range(3):
        d = (x[b] - torch.tanh(x[b]) * t[b] ** 0.5) / t[b]
        torch.testing.assert_close(out[b], x[b] + (t_next[b] - t[b]) * d)


def test_heun_step_is_edm_algorithm_1():
    x = torch.randn(4, 2, dtype=torch.float64)
    t, t_next = 3.0, 2.2
    x_euler = x + (t_next - t) * (x - WIDE.denoise(x, t)) / t
    d_cur = (x - WIDE.denoise(x, t)) / t
    d_prime = (x_euler - WIDE.denoise(x_euler, t_next)) / t_next
    expected = x + (t_next - t) * (d_cur + d_prime) / 2
    torch.testing.assert_close(heun_step(WIDE.denoise, x, t, t_next), expected)


@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_score_form_equals_denoiser_form(solver):
    x_T = T * torch.randn(16, 2, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    ts = karras_timesteps(18).flip(0)
    a = solve_pf_ode(x_T, WIDE, ts, solver)
    b = solve_pf_ode(x_T, WIDE.score, ts, solver, model_type="score")
    torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_reference_solver_is_reversible(gen):
    """Integrating data -> noise (ascending ts) and back returns the start."""
    x0 = WIDE.sample(64, gen(0), dtype=torch.float64)
    ts = karras_timesteps(18)
    up = reference_pf_ode(x0, WIDE, ts)
    down = reference_pf_ode(up[-1], WIDE, ts.flip(0))
    torch.testing.assert_close(down[-1], x0, rtol=0, atol=1e-7)
    torch.testing.assert_close(down.flip(0), up, rtol=0, atol=1e-7)  # the whole path
    assert (up[-1] - x0).abs().max() > 10  # and it did go somewhere


def test_heun_integrates_backwards_too(gen):
    """Ascending ts runs the ODE data -> noise, where it is second order too: the relative
    error at T falls 4-fold from N = 100 to N = 200 (measured 6.1e-3 -> 1.5e-3)."""
    x0 = WIDE.sample(32, gen(1), dtype=torch.float64)
    exact = reference_pf_ode(x0, WIDE, [EPS, T])[-1]

    def error(N):
        x = solve_pf_ode(x0, WIDE, karras_timesteps(N), "heun")
        return ((x - exact).norm(dim=-1) / exact.norm(dim=-1)).max().item()

    e100, e200 = error(100), error(200)
    assert e200 < 5e-3 and 3.5 < e100 / e200 < 4.5, (e100, e200)


def test_trajectory_has_every_state():
    x_T = torch.randn(4, 2, dtype=torch.float64)
    ts = karras_timesteps(6).flip(0)
    path = solve_pf_ode(x_T, WIDE, ts, "heun", return_trajectory=True)
    assert path.shape == (6, 4, 2)
    assert torch.equal(path[0], x_T)
    assert torch.equal(path[-1], solve_pf_ode(x_T, WIDE, ts, "heun"))
    assert torch.equal(path[3], solve_pf_ode(x_T, WIDE, ts[:4], "heun"))


def test_unknown_solver_or_model_type_raise():
    x = torch.zeros(1, 2)
    with pytest.raises(ValueError, match="unknown solver 'rk4'"):
        solve_pf_ode(x, WIDE, [T, EPS], "rk4")
    with pytest.raises(ValueError, match="model_type"):
        solve_pf_ode(x, WIDE, [T, EPS], model_type="velocity")


def test_consistency_function_is_the_pf_ode_map_and_heun_approaches_it(gen):
    """f*(x, eps) = x (boundary condition); with steps=None f*(x, t) is the scipy PF-ODE end
    point, and the Heun version converges to it at second order in the number of steps."""
    f_exact = consistency_function(WIDE)
    x = 2.0 * torch.randn(16, 2, generator=gen(0), dtype=torch.float64)
    assert torch.equal(f_exact(x, EPS), x)
    ts = torch.tensor([2.0, EPS], dtype=torch.float64)
    ref = reference_pf_ode(x, WIDE, ts, rtol=1e-12, atol=1e-12)[-1]
    torch.testing.assert_close(f_exact(x, 2.0), ref, rtol=0, atol=1e-6)  # at rtol = atol = 1e-8
    errors = [(consistency_function(WIDE, steps=n)(x, 2.0) - ref).abs().max().item()
              for n in (20, 40, 80)]  # fmt: skip
    ratios = [a / b for a, b in zip(errors, errors[1:])]
    assert all(3.0 < r < 5.0 for r in ratios), (errors, ratios)  # 4 = 2^2: second order


def test_solver_chain_satisfies_the_zero_cd_loss_identity(gen):
    """The chain f(x, t_n) = Phi-chain from t_n to eps is exactly what L_CD^N = 0 forces
    (Eq. (7) with theta^- = theta): f(x, t_{n+1}) = f(Phi(x, t_{n+1} -> t_n), t_n), and
    f(x, eps) = x at the last grid point."""
    ts = karras_timesteps(10).flip(0)  # descending, ts[-1] = eps
    x = 3.0 * torch.randn(len(ts), 8, 2, generator=gen(1), dtype=torch.float64)
    chain = solver_chain(WIDE.denoise, x, ts, "heun")
    torch.testing.assert_close(chain[-1], x[-1], rtol=0, atol=0)  # boundary condition
    for i in range(len(ts) - 1):  # from t_{n+1} = ts[i]: one Heun step, then the chain from ts[i+1]
        stepped = heun_step(WIDE.denoise, x[i], ts[i], ts[i + 1])
        x_next = x.clone()
        x_next[i + 1] = stepped
        again = solver_chain(WIDE.denoise, x_next, ts, "heun", starts=[i + 1])[0]
        torch.testing.assert_close(chain[i], again, rtol=1e-12, atol=1e-12)


def test_solver_chain_of_heun_is_within_theorem_1s_second_order_of_the_true_f(gen):
    """Theorem 1: with a p-th order solver the zero-loss consistency model is O(Delta t^p)
    from the true f. Halving the grid spacing (N - 1 = 16, 32, 64) cuts Heun's error at T
    by about 2^2."""
    x_T = T * torch.randn(64, 2, generator=gen(2), dtype=torch.float64)
    truth = consistency_function(WIDE)(x_T, T)
    errors = []
    for N in (17, 33, 65):
        ts = karras_timesteps(N).flip(0)
        start = torch.zeros(N, *x_T.shape, dtype=torch.float64)
        start[0] = x_T
        errors.append((solver_chain(WIDE.denoise, start, ts, "heun", starts=[0])[0] - truth)
                      .abs().max().item())  # fmt: skip
    order = np.polyfit(np.log([1 / 16, 1 / 32, 1 / 64]), np.log(errors), 1)[0]
    assert 1.8 < order < 2.3, (errors, order)
