"""Numerical solvers for the PF-ODE dx/dt = (x - D(x, t)) / t (Eq. (3), Song et al. 2023).

``euler_step`` and ``heun_step`` are the one-step updates Phi of Eq. (6) used both to
sample and as the teacher step of consistency distillation (Algorithm 2). ``solve_pf_ode``
chains them over a grid; ``reference_pf_ode`` integrates with scipy at tight tolerance and
serves as ground truth for trajectories and for the true consistency function f*
(``consistency_function``). ``solver_chain`` is the consistency function that CD reaches
at zero loss (Theorem 1).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from . import checks
from .constants import EPS
from .pfode import (
    Denoiser,
    as_denoiser,
    broadcast_time,
    karras_timesteps,
    pf_ode_drift,
    score_to_denoiser,
)
from .runtime.progress import tqdm


def euler_step(denoiser: Denoiser, x: Tensor, t_cur, t_next) -> Tensor:
    """One Euler step of the PF-ODE from t_cur to t_next (Eq. (6), Phi = -t s(x, t)).

    Times are scalars or per-sample tensors of shape (B,).
    """
    d_cur = pf_ode_drift(denoiser, x, t_cur)  # $d = (x - D(x, t)) / t$
    return x + broadcast_time(t_next - t_cur, x) * d_cur  # Euler step.


def heun_step(denoiser: Denoiser, x: Tensor, t_cur, t_next) -> Tensor:
    """One step of EDM's 2nd-order Heun method (Karras et al. 2022, Algorithm 1).

    Two denoiser evaluations; a scalar t_next == 0 falls back to Euler (one evaluation).
    """
    h = broadcast_time(t_next - t_cur, x)
    d_cur = pf_ode_drift(denoiser, x, t_cur)
    x_next = x + h * d_cur  # Euler step.
    if torch.as_tensor(t_next).ndim == 0 and float(t_next) == 0.0:
        return x_next
    d_prime = pf_ode_drift(denoiser, x_next, t_next)
    return x + h * (0.5 * d_cur + 0.5 * d_prime)  # 2nd order correction.


SOLVERS = {"euler": euler_step, "heun": heun_step}


def solve_pf_ode(
    x_T: Tensor,
    model,
    ts,
    solver: str = "heun",
    return_trajectory: bool = False,
    *,
    model_type: str = "denoiser",
    progress: bool = False,
) -> Tensor:
    """Integrate the PF-ODE of Eq. (2)/(3) (Song et al. 2023) along the times ``ts``.

    Parameters
    ----------
    x_T : Tensor, shape (B, *D)
        State at time ts[0].
    model : callable or object
        A denoiser D(x, t) = E[x_0 | x_t] (default), or an object with a ``.denoise``
        method such as ``GaussianMixture``; with ``model_type="score"`` a score
        s(x, t) = grad log p_t(x), converted by Tweedie's formula D = x + t^2 s.
    ts : sequence of float, shape (N,)
        Times in the order of integration: descending (e.g. ``karras_timesteps(N).flip(0)``)
        goes from noise to data; ascending runs the ODE backwards, data to noise.
    solver : {"heun", "euler"}
        Heun costs 2 evaluations per step (2(N-1) in all), Euler 1.
    return_trajectory : bool
        Also return every intermediate state, shape (N, B, *D).

    Returns
    -------
    Tensor, shape (B, *D): the state at ts[-1] (or the trajectory).
    """
    if solver not in SOLVERS:
        raise ValueError(f"unknown solver {solver!r}: choose one of {sorted(SOLVERS)}")
    if model_type not in ("denoiser", "score"):
        raise ValueError(f"model_type must be 'denoiser' or 'score', got {model_type!r}")
    denoiser = score_to_denoiser(model) if model_type == "score" else as_denoiser(model)
    step = SOLVERS[solver]
    _check_ode_inputs(x_T, ts)
    ts = torch.as_tensor(ts, dtype=x_T.dtype, device=x_T.device)
    x, path = x_T, [x_T]
    with checks.checked():
        for i in tqdm(range(len(ts) - 1), disable=not progress, desc=f"PF-ODE ({solver})"):
            x = step(denoiser, x, ts[i], ts[i + 1])
            if return_trajectory:
                path.append(x)
    return torch.stack(path) if return_trajectory else x


def reference_pf_ode(
    x_T: Tensor, model, ts, rtol: float = 1e-10, atol: float = 1e-10, method: str = "DOP853"
) -> Tensor:
    """Ground-truth solution of the PF-ODE, Eq. (3), with ``scipy.integrate.solve_ivp``.

    At tight tolerance it gives the true trajectories and, at ts[-1] = eps, the true
    consistency function f*(x_T, T) of Song et al. 2023, Sec. 3.

    Integrates in log-time s = ln t, where the ODE dx/ds = x - D(x, e^s) is far better
    conditioned near t = eps than in t. All points of the batch are integrated together
    in float64. Returns the trajectory at every time of ``ts``, shape (len(ts), B, *D).
    """
    denoiser = as_denoiser(model)
    _check_ode_inputs(x_T, ts)
    ts = np.asarray(torch.as_tensor(ts, dtype=torch.float64).cpu())
    if (ts <= 0).any():
        raise ValueError(f"ts: expected times > 0 (the solver works in ln t), got {ts.tolist()}")
    shape = x_T.shape

    def rhs(s, y):
        x = torch.from_numpy(y).reshape(shape)
        t = torch.tensor(np.exp(s), dtype=torch.float64)
        with torch.no_grad(), checks.checked():
            return (x - denoiser(x, t)).reshape(-1).numpy()

    y0 = x_T.detach().to("cpu", torch.float64).reshape(-1).numpy()
    s = np.log(ts)
    if s[0] == s[-1]:  # nothing to integrate
        return x_T.detach().expand(len(ts), *shape).clone()
    sol = solve_ivp(rhs, (s[0], s[-1]), y0, method=method, t_eval=s, rtol=rtol, atol=atol)
    if not sol.success:
        raise RuntimeError(f"reference solver failed: {sol.message}")
    out = torch.from_numpy(sol.y.T.copy()).reshape(len(ts), *shape)
    return out.to(dtype=x_T.dtype, device=x_T.device)


def consistency_function(denoiser, steps: int | None = None, eps: float = EPS, rtol=1e-8,
                         atol=1e-8):  # fmt: skip
    """The consistency function of a PF-ODE, f*(x, t) = x_eps on the trajectory of Eq. (3)
    through x at time t (Sec. 3 of Song et al. 2023), with f*(x, eps) = x.

    ``steps=None`` integrates with scipy at tolerances ``rtol``, ``atol``
    (``reference_pf_ode``): with the exact denoiser of a ``GaussianMixture`` it is the ideal
    consistency model, the ground truth of the course. ``steps=n`` takes n Heun steps on a
    Karras grid from t down to eps instead (cheaper; its own error is O(1/n^2)).
    Returns a callable f(x, t) for x of shape (B, *D) and a scalar t.
    """

    def f(x: Tensor, t) -> Tensor:
        t = float(t)
        if t <= eps * (1 + 1e-9):
            return x  # the boundary condition f(x, eps) = x
        if steps is None:
            ts = torch.tensor([t, eps], dtype=torch.float64)
            return reference_pf_ode(x, denoiser, ts, rtol=rtol, atol=atol)[-1]
        return solve_pf_ode(x, denoiser, karras_timesteps(steps + 1, eps, t).flip(0), "heun")

    return f


def solver_chain(denoiser, states: Tensor, ts, solver: str = "heun", starts=None) -> Tensor:
    """The consistency function that consistency distillation reaches at zero loss.

    If L_CD^N = 0 (Eq. (7), with theta^- = theta), then f_theta(x, t_{n+1}) =
    f_theta(Phi(x), t_n) for every grid pair, and with f_theta(x, eps) = x this makes
    f_theta(x, t_n) the teacher's one-step solver chained from t_n down to eps. Theorem 1
    bounds its distance to the true f by O(Delta t^p).

    Parameters
    ----------
    denoiser : D(x, t) of the teacher (e.g. ``GaussianMixture.denoise``)
    states : Tensor, shape (N, B, d): points x_{t_n} at the grid times ``ts``
    ts : descending grid, shape (N,), ts[-1] = eps
    starts : optional ascending indices into ``ts`` to start from (default: all)

    Returns
    -------
    Tensor, shape (len(starts), B, d): the chain's end point from each start.
    """
    starts = list(range(len(ts))) if starts is None else sorted(starts)
    step, x = SOLVERS[solver], states[starts].clone()
    B, rest = x.shape[1], x.shape[2:]
    for i in range(len(ts) - 1):  # the rows that started at or before ts[i] step to ts[i + 1]
        m = sum(j <= i for j in starts)
        flat = x[:m].reshape(m * B, *rest)
        x[:m] = step(denoiser, flat, ts[i], ts[i + 1]).reshape(m, B, *rest)
    return x


def _check_ode_inputs(x_T: Tensor, ts) -> None:
    """x_T a finite batch; ts finite, >= 0, and > 0 but for the last (the drift divides by t)."""
    checks.check_tensor("x_T", x_T)
    if x_T.ndim < 2 or x_T.shape[0] == 0:
        raise ValueError(f"x_T: expected a batch of shape (B, *D), B >= 1, got {tuple(x_T.shape)}")
    checks.check_finite("x_T", x_T)
    t = checks.check_times("ts", ts, 0.0, math.inf, interval="[0, inf)")
    if bool((t[:-1] == 0).any()):
        raise ValueError(f"ts: expected times > 0 except the last (dx/dt divides by t), got "
                         f"{t.tolist()}")  # fmt: skip
