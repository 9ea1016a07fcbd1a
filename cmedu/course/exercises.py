"""The checks of the course's exercises: one small check per function a learner writes.

Notebooks 1 to 6 and 9 ask the learner to write pieces of the paper (the Karras grid, an
Euler and a Heun step, c_skip and c_out, the CT target, Algorithm 1, ...). After each
exercise a check cell calls ``check(name, fn)``, which compares ``fn`` with ground truth
(a closed form of the Gaussian mixture, a convergence order, an invariant, or cmedu's own
implementation on random inputs) and prints one line, never a traceback::

    PASS  Exercise 3.1 (the Karras time grid): ...
    FAIL  Exercise 3.1 (the Karras time grid): what is wrong. Hint: ...
    ----  Exercise 3.1 (the Karras time grid): not yet done ...

A check draws its random inputs from its own generators, in float64, inside
``torch.random.fork_rng``: a check cell leaves the notebook's random state as it found it,
so the cells after it run the same whatever the learner wrote. ``EXERCISES`` lists every
exercise by name; ``verdict`` returns the result without printing (for tests).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import torch
from scipy import stats
from torch import Tensor, nn

from .. import editing
from ..distances import pseudo_huber
from ..ema import ema_update
from ..losses import DenoisingScoreMatching
from ..parameterization import ConsistencyModel, c_in, c_noise, c_out, c_skip
from ..pfode import karras_timesteps
from ..sampling import default_times, multistep_sample
from ..schedules import ct_mu, ct_N, ict_N
from ..score_estimation import unbiased_score_estimate
from ..solvers import euler_step, heun_step
from ..toys import GaussianMixture, toy_data

PASS, FAIL, NOT_DONE = "PASS", "FAIL", "not yet done"
F64 = torch.float64


class Wrong(Exception):
    """What a check found wrong with a learner's function, with a hint."""


@dataclass(frozen=True)
class Exercise:
    """One exercise: its number in the course ("3.1"), a title, and its check."""

    number: str
    title: str
    check: Callable[[Callable], str]  # returns what was verified; raises Wrong


@dataclass(frozen=True)
class Verdict:
    """The result of a check: ``status`` (PASS, FAIL or "not yet done") and the line shown."""

    status: str
    line: str


EXERCISES: dict[str, Exercise] = {}


def _exercise(name: str, number: str, title: str):
    """Register the decorated function as the check of exercise ``name``."""

    def register(check):
        EXERCISES[name] = Exercise(number, title, check)
        return check

    return register


def verdict(name: str, fn) -> Verdict:
    """Run the check of exercise ``name`` on the learner's ``fn``; any exception it raises
    becomes a FAIL line (NotImplementedError: "not yet done"), never a traceback."""
    if name not in EXERCISES:
        raise ValueError(f"unknown exercise {name!r}: choose one of {sorted(EXERCISES)}")
    ex = EXERCISES[name]
    head = f"Exercise {ex.number} ({ex.title})"
    try:
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            detail = ex.check(fn)
    except NotImplementedError:
        return Verdict(
            NOT_DONE,
            f"----  {head}: not yet done (the function still raises "
            "NotImplementedError); write it and run both cells again.",
        )
    except Wrong as err:
        return Verdict(FAIL, f"FAIL  {head}: {err}")
    except Exception as err:  # the learner's code failed: say how, without a traceback
        return Verdict(FAIL, f"FAIL  {head}: your function raised {type(err).__name__}: {err}")
    return Verdict(PASS, f"PASS  {head}: {detail}")


def check(name: str, fn) -> None:
    """Print the one-line verdict of exercise ``name`` on the learner's function ``fn``."""
    print(verdict(name, fn).line)


# --- Shared helpers -------------------------------------------------------------------------


def _gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _randn(g: torch.Generator, *shape) -> Tensor:
    return torch.randn(*shape, generator=g, dtype=F64)


def _as_tensor(what: str, got, want: Tensor) -> Tensor:
    """``got`` as a float64 tensor of ``want``'s shape, or Wrong saying what it is."""
    if got is None:
        raise Wrong(f"{what} returned None. Hint: did you forget `return`?")
    try:
        got = torch.as_tensor(got).to(F64)
    except Exception as err:
        raise Wrong(f"{what} should return a tensor, got {type(got).__name__}") from err
    if tuple(got.shape) != tuple(want.shape):
        raise Wrong(f"{what} should have shape {tuple(want.shape)}, got {tuple(got.shape)}")
    return got


def _agree(what: str, got, want: Tensor, hint: str, mistakes=(), rtol=1e-9, atol=1e-12):
    """Raise Wrong unless ``got`` equals ``want``; name the mistake when ``got`` equals one of
    ``mistakes`` (pairs of message and the value that mistake gives)."""
    single = isinstance(got, Tensor) and got.dtype in (torch.float32, torch.float16, torch.bfloat16)
    got = _as_tensor(what, got, want)
    want = want.to(F64)
    if not bool(torch.isfinite(got).all()):
        raise Wrong(f"{what} has nan or inf values. Hint: {hint}")
    if torch.allclose(got, want, rtol=rtol, atol=atol):
        return
    for message, value in mistakes:
        value = torch.as_tensor(value, dtype=F64)
        if value.shape == want.shape and torch.allclose(got, value, rtol=rtol, atol=atol):
            raise Wrong(f"{what}: {message}")
    err = (got - want).abs().max().item()
    if single and torch.allclose(got, want, rtol=1e-4, atol=1e-6):
        raise Wrong(
            f"{what} agrees with the truth only to single precision (error {err:.3g}): "
            "compute in float64, e.g. torch.arange(N, dtype=torch.float64)."
        )
    raise Wrong(f"{what} differs from the truth by up to {err:.3g}. Hint: {hint}")


def _equal_numbers(what: str, got, want, hint: str, mistakes=(), rel=1e-12):
    """Scalar version of ``_agree`` for schedules (ints and floats)."""
    try:
        got = float(got)
    except Exception as err:
        raise Wrong(f"{what} should return a number, got {type(got).__name__}") from err
    if math.isclose(got, want, rel_tol=rel, abs_tol=1e-15):
        return
    for message, value in mistakes:
        if math.isclose(got, value, rel_tol=rel, abs_tol=1e-15):
            raise Wrong(f"{what} = {got:g}: {message}")
    raise Wrong(f"{what} = {got:g}, expected {want:g}. Hint: {hint}")


def _mixture() -> GaussianMixture:
    return toy_data("8gaussians")


def _noisy_points(g: torch.Generator, n: int, t: float) -> Tensor:
    """n points x_t = x_0 + t z of the 8-Gaussian mixture, float64, shape (n, 2)."""
    return _mixture().sample(n, g, dtype=F64) + t * _randn(g, n, 2)


def _one_gaussian_order(step) -> float:
    """Convergence order of a one-step PF-ODE solver ``step(D, x, t_cur, t_next)`` on
    p_data = N(m, s^2 I), whose PF-ODE (Eq. (3)) has the exact solution
    x_t = m + (x_0 - m) sqrt((s^2 + t^2) / (s^2 + t_0^2)): log2 of the error ratio when
    the number of uniform steps from t = 4 to 0.25 doubles (32 -> 64 -> 128), averaged."""
    m, s = torch.tensor([0.3, -0.2], dtype=F64), 0.5
    one = GaussianMixture(m[None], [s])
    x0 = _randn(_gen(5), 16, 2) * 4.0
    exact = m + (x0 - m) * math.sqrt((s**2 + 0.25**2) / (s**2 + 4.0**2))
    errors = []
    for n in (32, 64, 128):
        ts, x = torch.linspace(4.0, 0.25, n + 1, dtype=F64), x0
        for i in range(n):
            x = _as_tensor("your step", step(one.denoise, x, ts[i], ts[i + 1]), x0)
        errors.append((x - exact).norm(dim=1).mean().item())
    return 0.5 * (math.log2(errors[0] / errors[1]) + math.log2(errors[1] / errors[2]))


# --- Notebook 1: the PF-ODE -----------------------------------------------------------------


@_exercise("gaussian_score", "1.1", "score of p_t for one Gaussian")
def check_gaussian_score(fn) -> str:
    """gaussian_score(x, m, s, t) = (m - x) / (s^2 + t^2): the score of p_t = N(m, (s^2+t^2) I),
    Eq. (3)'s input for one Gaussian, against ``GaussianMixture.score`` (closed form)."""
    g = _gen(11)
    m, s = _randn(g, 2), 0.4
    one = GaussianMixture(m[None], [s])
    for t in (0.01, 0.7, 5.0):
        x = m + (s**2 + t**2) ** 0.5 * _randn(g, 64, 2)
        want = one.score(x, t)
        _agree(
            f"gaussian_score(x, m, s, t={t})",
            fn(x, m, s, t),
            want,
            "p_t = N(m, (s^2 + t^2) I), so grad log p_t(x) = (m - x) / (s^2 + t^2).",
            [
                ("the sign is flipped: the score points from x towards the mean m.", -want),
                (
                    "the variance of p_t is s^2 + t^2 (t is a standard deviation, not a variance).",
                    (m - x) / (s**2 + t),
                ),
            ],
        )
    return "equals the closed-form score of N(m, (s^2 + t^2) I) at t = 0.01, 0.7 and 5."


@_exercise("pf_ode_velocity", "1.2", "the PF-ODE velocity, Eq. (3)")
def check_pf_ode_velocity(fn) -> str:
    """pf_ode_velocity(D, x, t) = (x - D(x, t)) / t = -t grad log p_t(x): Eq. (3), against the
    mixture's closed-form score."""
    mix, g = _mixture(), _gen(12)
    for t in (0.05, 1.0, 20.0):
        x = _noisy_points(g, 64, t)
        want = -t * mix.score(x, t)
        D = mix.denoise(x, t)
        _agree(
            f"pf_ode_velocity(D, x, t={t})",
            fn(mix.denoise, x, t),
            want,
            "Eq. (3): dx/dt = -t s(x, t), and s = (D(x, t) - x) / t^2 (Tweedie).",
            [
                (
                    "the sign is flipped: dx/dt = (x - D) / t, so x moves away from D as t grows.",
                    (D - x) / t,
                ),
                (
                    "(x - D) / t^2 is minus the score; the velocity is t times the score's "
                    "negative, i.e. (x - D) / t.",
                    (x - D) / t**2,
                ),
            ],
        )
    return "equals -t * grad log p_t(x) of the exact mixture at t = 0.05, 1 and 20."


@_exercise("tweedie_denoiser", "1.3", "Tweedie's formula")
def check_tweedie_denoiser(fn) -> str:
    """tweedie_denoiser(score, x, t) = x + t^2 score(x, t) = E[x_0 | x_t = x] (Tweedie's
    formula, Lemma 1 of Song et al. 2023), against the mixture's closed-form posterior mean."""
    mix, g = _mixture(), _gen(13)
    for t in (0.05, 1.0, 20.0):
        x = _noisy_points(g, 64, t)
        want, s = mix.denoise(x, t), mix.score(x, t)
        _agree(
            f"tweedie_denoiser(score, x, t={t})",
            fn(mix.score, x, t),
            want,
            "E[x_0 | x_t = x] = x + t^2 grad log p_t(x).",
            [
                (
                    "the score is multiplied by t; Tweedie's formula needs the variance t^2.",
                    x + t * s,
                ),
                (
                    "the sign is flipped: the score points towards the data, so D = x + t^2 s.",
                    x - t**2 * s,
                ),
            ],
        )
    return "equals the exact posterior mean E[x_0 | x_t] of the mixture at t = 0.05, 1 and 20."


# --- Notebook 2: score estimation -----------------------------------------------------------


@_exercise("unbiased_score", "2.1", "the estimator of Lemma 1")
def check_unbiased_score(fn) -> str:
    """-(x_t - x_0) / t^2 (Lemma 1): equal to cmedu's on random inputs, and, being linear in
    x_0, equal to the exact score when x_0 is replaced by its posterior mean E[x_0 | x_t]."""
    mix, g = _mixture(), _gen(21)
    t = 0.5
    x0 = mix.sample(64, g, dtype=F64)
    x_t = x0 + t * _randn(g, 64, 2)
    want = unbiased_score_estimate(x_t, x0, t)
    _agree(
        "unbiased_score(x_t, x0, t)",
        fn(x_t, x0, t),
        want,
        "Lemma 1: grad log p_t(x_t) = -E[(x_t - x_0) / t^2 | x_t]; one draw of x_0 gives "
        "the estimate -(x_t - x_0) / t^2.",
        [
            ("the sign is flipped: the estimate points from x_t towards x_0.", -want),
            ("divide by the variance t^2, not by t.", -(x_t - x0) / t),
        ],
    )
    mean = fn(x_t, mix.denoise(x_t, t), t)
    _agree(
        "unbiased_score(x_t, E[x0 | x_t], t)",
        mean,
        mix.score(x_t, t),
        "averaged over the posterior of x_0, the estimate must be the exact score.",
    )
    return "matches cmedu, and its posterior mean is the exact score of the mixture (Lemma 1)."


@_exercise("edm_weight", "2.2", "EDM's loss weight lambda(sigma)")
def check_edm_weight(fn) -> str:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (Karras et al. 2022,
    Table 1), which is 1 / c_out(sigma)^2 of the unshifted EDM preconditioning."""
    sigma = torch.logspace(-3, 2, 11, dtype=F64)
    for sd in (0.5, 1.0):
        want = 1 / c_out(sigma, sd, eps=0.0) ** 2
        _agree(
            f"edm_weight(sigma, sigma_data={sd})",
            fn(sigma, sd),
            want,
            "lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma * sigma_data)^2.",
            [
                ("1 / sigma^2 is the weight without EDM's preconditioning.", 1 / sigma**2),
                (
                    "square the denominator: (sigma * sigma_data)^2.",
                    (sigma**2 + sd**2) / (sigma * sd),
                ),
            ],
        )
    return "equals 1 / c_out(sigma)^2 for sigma from 0.001 to 100 (EDM Table 1)."


@_exercise("dsm_loss", "2.3", "the denoising score matching loss")
def check_dsm_loss(fn) -> str:
    """Per-sample lambda(sigma) mean ||D(x + sigma z, sigma) - x||^2 (Karras et al. 2022,
    Sec. 5), against ``cmedu.DenoisingScoreMatching`` with the same sigma and z."""
    mix, g = _mixture(), _gen(23)
    x = mix.sample(64, g, dtype=F64)
    sigma, z = torch.exp(-1.2 + 1.2 * _randn(g, 64)), _randn(g, 64, 2)
    dsm = DenoisingScoreMatching(sigma_data=0.5)
    want = dsm(mix.denoise, None, x, sigma=sigma, z=z).per_sample
    weight = (sigma**2 + 0.25) / (sigma * 0.5) ** 2
    _agree(
        "dsm_loss(D, x, sigma, z, sigma_data)",
        fn(mix.denoise, x, sigma, z, 0.5),
        want,
        "lambda(sigma) * mean over coordinates of (D(x + sigma z, sigma) - x)^2, one "
        "value per sample.",
        [
            ("multiply by lambda(sigma) (Exercise 2.2).", want / weight),
            (
                "average the squared error over the coordinates (mean, not sum), as cmedu "
                "and the official code do.",
                2 * want,
            ),
        ],
    )
    return "matches cmedu.DenoisingScoreMatching on the mixture's exact denoiser."


# --- Notebook 3: solvers --------------------------------------------------------------------


@_exercise("karras_grid", "3.1", "the Karras time grid")
def check_karras_grid(fn) -> str:
    """t_i = (eps^{1/rho} + (i-1)/(N-1) (T^{1/rho} - eps^{1/rho}))^rho, i = 1..N, ascending
    (Sec. 4 of Song et al. 2023), against ``karras_timesteps``."""
    for N, eps, T, rho in ((18, 0.002, 80.0, 7.0), (5, 0.01, 10.0, 3.0), (2, 0.002, 80.0, 7.0)):
        want = karras_timesteps(N, eps, T, rho)
        i = torch.arange(N, dtype=F64)
        off_by_one = (eps ** (1 / rho) + i / N * (T ** (1 / rho) - eps ** (1 / rho))) ** rho
        _agree(
            f"karras_grid(N={N}, eps={eps}, T={T}, rho={rho})",
            fn(N, eps, T, rho),
            want,
            "t_i = (eps^(1/rho) + (i-1)/(N-1) (T^(1/rho) - eps^(1/rho)))^rho, ascending.",
            [
                (
                    "the grid is descending; cmedu stores it ascending, t_1 = eps first.",
                    want.flip(0),
                ),
                ("off by one: divide by N - 1 so that the last point is T.", off_by_one),
                (
                    "rho is missing: that is the uniform grid (rho = 1).",
                    torch.linspace(eps, T, N, dtype=F64),
                ),
            ],
        )
    return "equals karras_timesteps for N = 18, 5 and 2 (t_1 = eps, t_N = T, ascending)."


@_exercise("euler_step", "3.2", "an Euler step of the PF-ODE")
def check_euler_step(fn) -> str:
    """x + (t_next - t_cur)(x - D(x, t_cur)) / t_cur (Eq. (6) with the Euler Phi): against
    ``euler_step`` on the mixture, then its convergence order on one Gaussian (exact)."""
    mix, g = _mixture(), _gen(32)
    x = _noisy_points(g, 64, 2.0)
    want = euler_step(mix.denoise, x, 2.0, 1.5)
    d = (x - mix.denoise(x, 2.0)) / 2.0
    _agree(
        "euler_step(D, x, t_cur=2, t_next=1.5)",
        fn(mix.denoise, x, 2.0, 1.5),
        want,
        "d = (x - D(x, t_cur)) / t_cur, then x + (t_next - t_cur) d.",
        [
            (
                "the step has the wrong sign: multiply d by (t_next - t_cur), which is negative "
                "from noise to data.",
                x - (1.5 - 2.0) * d,
            )
        ],
    )
    order = _one_gaussian_order(fn)
    if abs(order - 1.0) > 0.2:
        raise Wrong(
            f"its order of convergence is {order:.1f}, not 1. Hint: one evaluation "
            "of the drift per step, at (x, t_cur)."
        )
    return f"matches cmedu.euler_step and converges with order {order:.1f} (one Gaussian)."


@_exercise("heun_step", "3.3", "a Heun step of the PF-ODE")
def check_heun_step(fn) -> str:
    """EDM's Heun step (Karras et al. 2022, Algorithm 1): against ``heun_step`` on the
    mixture, then its convergence order 2 on one Gaussian, whose PF-ODE is solved exactly."""
    mix, g = _mixture(), _gen(33)
    x = _noisy_points(g, 64, 2.0)
    want = heun_step(mix.denoise, x, 2.0, 1.5)
    d = (x - mix.denoise(x, 2.0)) / 2.0
    x_e = x - 0.5 * d
    wrong_t = x - 0.5 * (0.5 * d + 0.5 * (x_e - mix.denoise(x_e, 2.0)) / 2.0)
    _agree(
        "heun_step(D, x, t_cur=2, t_next=1.5)",
        fn(mix.denoise, x, 2.0, 1.5),
        want,
        "d = drift at (x, t_cur); x' = x + h d; d' = drift at (x', t_next); "
        "x + h (d + d') / 2 with h = t_next - t_cur.",
        [
            (
                "this is the Euler step: add the 2nd-order correction with the drift d' at "
                "(x', t_next).",
                x_e,
            ),
            ("evaluate d' at t_next, where the Euler step x' lies, not at t_cur.", wrong_t),
        ],
    )
    order = _one_gaussian_order(fn)
    if abs(order - 2.0) > 0.3:
        raise Wrong(f"its order of convergence is {order:.1f}, not 2.")
    return f"matches cmedu.heun_step and converges with order {order:.1f} (one Gaussian)."


# --- Notebook 4: consistency distillation ---------------------------------------------------


@_exercise("c_skip_c_out", "4.1", "c_skip, c_out and the boundary condition")
def check_c_skip_c_out(fn) -> str:
    """(c_skip(t), c_out(t)) of App. C (Song et al. 2023), against cmedu's, and the boundary
    condition c_skip(eps) = 1, c_out(eps) = 0 that makes f(x, eps) = x (Eq. (5))."""
    t = torch.cat([torch.tensor([0.002], dtype=F64), torch.logspace(-2, 2, 9, dtype=F64)])
    for sd, eps in ((0.5, 0.002), (1.0, 0.01)):
        t_e = t.clamp(min=eps)
        got = fn(t_e, sd, eps)
        if not isinstance(got, tuple | list) or len(got) != 2:
            raise Wrong("c_skip_c_out should return a pair (c_skip, c_out).")
        tag = f"(sigma_data={sd}, eps={eps})"
        _agree(
            f"c_skip{tag}",
            got[0],
            c_skip(t_e, sd, eps),
            "c_skip(t) = sigma_data^2 / ((t - eps)^2 + sigma_data^2).",
            [("shift t by eps: without it c_skip(eps) is not exactly 1.", c_skip(t_e, sd, 0.0))],
        )
        _agree(
            f"c_out{tag}",
            got[1],
            c_out(t_e, sd, eps),
            "c_out(t) = sigma_data (t - eps) / sqrt(sigma_data^2 + t^2).",
            [
                (
                    "the denominator uses t, not t - eps (App. C and the official code).",
                    sd * (t_e - eps) / (sd**2 + (t_e - eps) ** 2) ** 0.5,
                ),
                ("shift t by eps in the numerator so that c_out(eps) = 0.", c_out(t_e, sd, 0.0)),
            ],
        )
    return "matches App. C; c_skip(eps) = 1 and c_out(eps) = 0 exactly."


class _TinyNet(nn.Module):
    """A fixed smooth network F(x_in, c_noise) = tanh(x_in W + c_noise) for the checks."""

    def __init__(self):
        super().__init__()
        self.register_buffer("W", torch.tensor([[0.8, -0.5], [0.3, 1.1]], dtype=F64))

    def forward(self, x_in: Tensor, noise: Tensor) -> Tensor:
        noise = torch.as_tensor(noise, dtype=x_in.dtype)
        return torch.tanh(x_in @ self.W + noise.reshape(-1, 1))


@_exercise("consistency_model", "4.2", "the consistency model f_theta, Eq. (5)")
def check_consistency_model(fn) -> str:
    """f(x, t) = c_skip(t) x + c_out(t) F(c_in(t) x, c_noise(t)) (Eq. (5), App. C), against
    ``ConsistencyModel`` around the same network, and f(x, eps) = x (the boundary condition)."""
    net, g = _TinyNet(), _gen(42)
    model = ConsistencyModel(net, data_shape=(2,))
    for t in (0.002, 0.3, 5.0, 80.0):
        x = t * _randn(g, 32, 2)
        want = model(x, t)
        T = torch.tensor(t, dtype=F64)
        no_c_in = c_skip(T) * x + c_out(T) * net(x, c_noise(T).expand(32))
        raw_t = c_skip(T) * x + c_out(T) * net(c_in(T) * x, T.expand(32))
        _agree(
            f"consistency_model(F, x, t={t})",
            fn(net, x, t),
            want,
            "f = c_skip(t) x + c_out(t) F(c_in(t) x, c_noise(t)), c_in = 1/sqrt(t^2 + "
            "sigma_data^2), c_noise = 0.25 ln t (a tensor of shape (B,)).",
            [
                ("scale the network's input by c_in(t) = 1/sqrt(t^2 + sigma_data^2).", no_c_in),
                ("condition F on c_noise(t) = 0.25 ln t, not on t itself.", raw_t),
            ],
        )
    return "matches cmedu.ConsistencyModel at t = eps, 0.3, 5 and 80; f(x, eps) = x."


@_exercise("cd_target", "4.3", "the CD target point, Eq. (6)")
def check_cd_target(fn) -> str:
    """x_hat_{t_n}: one Heun step of the teacher's PF-ODE from x_{t_{n+1}} at t_{n+1} down to
    t_n (Eq. (6), Algorithm 2), per-sample times of shape (B,), against ``heun_step``."""
    mix, g = _mixture(), _gen(43)
    ts = karras_timesteps(18)
    n = torch.randint(0, 17, (64,), generator=g)
    t, t_next = ts[n], ts[n + 1]
    x_next = mix.sample(64, g, dtype=F64) + t_next[:, None] * _randn(g, 64, 2)
    want = heun_step(mix.denoise, x_next, t_next, t)
    _agree(
        "cd_target(D, x_next, t_next, t)",
        fn(mix.denoise, x_next, t_next, t),
        want,
        "one Heun step (Exercise 3.3) from (x_next, t_next) to t; the times are tensors "
        "of shape (B,): use t[:, None] against x of shape (B, 2).",
        [
            (
                "this is an Euler step; the paper's CD teacher takes a Heun step.",
                euler_step(mix.denoise, x_next, t_next, t),
            ),
            (
                "the step goes from t_n up to t_{n+1}; CD steps down, from t_{n+1} to t_n.",
                heun_step(mix.denoise, x_next, t, t_next),
            ),
        ],
    )
    return "one Heun step from t_{n+1} to t_n, as cmedu's CD loss takes (Eq. (6))."


@_exercise("ema", "4.4", "the target network's EMA, Eq. (8)")
def check_ema(fn) -> str:
    """theta^- <- mu theta^- + (1 - mu) theta (Eq. (8)), on the weights of two networks,
    against ``cmedu.ema_update``."""
    g = _gen(44)
    for mu in (0.95, 0.0, 0.5):
        online, target = nn.Linear(3, 2).double(), nn.Linear(3, 2).double()
        for p in (*online.parameters(), *target.parameters()):
            p.data = _randn(g, *p.shape)
        before, theta = target.weight.detach().clone(), online.weight.detach().clone()
        ema_update(target, online, mu)
        _agree(
            f"ema(theta_minus, theta, mu={mu})",
            fn(before, theta, mu),
            target.weight.data,
            "theta^- <- mu theta^- + (1 - mu) theta: mu is the weight of the old target.",
            [
                (
                    "mu and 1 - mu are swapped: mu weighs the target theta^-.",
                    (1 - mu) * before + mu * theta,
                )
            ],
        )
    return "matches cmedu.ema_update for mu = 0.95, 0 (theta^- = theta) and 0.5."


# --- Notebook 5: consistency training -------------------------------------------------------


@_exercise("ct_target", "5.1", "the CT target point")
def check_ct_target(fn) -> str:
    """x_hat_{t_n} = x + t_n z with the same z as x_{t_{n+1}} = x + t_{n+1} z (Eq. (10)): the
    Euler step from x_{t_{n+1}} with the Lemma 1 estimate, i.e. with the "denoiser" x."""
    mix, g = _mixture(), _gen(51)
    ts = karras_timesteps(18)
    n = torch.randint(0, 17, (64,), generator=g)
    t, t_next = ts[n], ts[n + 1]
    x, z = mix.sample(64, g, dtype=F64), _randn(g, 64, 2)
    want = euler_step(lambda x_t, s: x, x + t_next[:, None] * z, t_next, t)
    _agree(
        "ct_target(x, z, t)",
        fn(x, z, t),
        want,
        "x + t_n z, with t of shape (B,): use t[:, None] against x of shape (B, 2).",
        [
            ("add the noise: x_hat = x + t_n z.", x - t[:, None] * z),
            (
                "the noise is scaled by t_n (a standard deviation), not t_n^2.",
                x + t[:, None] ** 2 * z,
            ),
        ],
    )
    return "equals the Euler step from x + t_{n+1} z with the Lemma 1 estimate (Eq. (10))."


def _check_schedule(fn, name: str, truth, cases, hint: str, mistakes=lambda *a: ()) -> None:
    """Compare a schedule fn(k, K, ...) with ``truth`` on every case (k, K, *rest)."""
    for k, K, *rest in cases:
        call = f"{name}(k={k}, K={K}, {', '.join(map(str, rest))})"
        _equal_numbers(call, fn(k, K, *rest), truth(k, K, *rest), hint, mistakes(k, K, *rest))


@_exercise("ct_N", "5.2", "CT's discretisation schedule N(k)")
def check_ct_N(fn) -> str:
    """N(k) = ceil(sqrt(k/K ((s1 + 1)^2 - s0^2) + s0^2) - 1) + 1 (App. C), against ``ct_N``."""
    K = 800_000
    cases = [(k, K, 2, 150) for k in (0, 1, 999, 200_000, 400_000, 799_999, K)]
    cases += [(k, 3000, 2, 40) for k in (0, 10, 1500, 3000)]

    def floor_variant(k, K, s0, s1):
        return [
            (
                "use the ceiling, not the floor.",
                math.floor(math.sqrt(k / K * ((s1 + 1) ** 2 - s0**2) + s0**2) - 1) + 1,
            )
        ]

    _check_schedule(
        fn,
        "ct_N",
        ct_N,
        cases,
        "N(k) = ceil(sqrt(k/K ((s1+1)^2 - s0^2) + s0^2) - 1) + 1; N(0) = s0, N(K) = s1 + 1.",
        floor_variant,
    )
    return "equals App. C's N(k) (CIFAR-10: 2 at k = 0 up to 151 at k = K)."


@_exercise("ct_mu", "5.3", "CT's EMA schedule mu(k)")
def check_ct_mu(fn) -> str:
    """mu(k) = exp(s0 ln(mu0) / N(k)) (App. C, the paper's formula), against ``ct_mu``."""
    K = 800_000
    cases = [(k, K, 2, 150, 0.9) for k in (0, 1000, 400_000, K)]
    cases += [(k, 3000, 2, 40, 0.95) for k in (0, 1500, 3000)]

    def code_variant(k, K, s0, s1, mu0):
        return [
            (
                "that is the official code's variant, with N(k) - 1; the paper divides by "
                "N(k), so that mu(0) = mu0.",
                ct_mu(k, K, s0, s1, mu0, variant="code"),
            )
        ]

    _check_schedule(
        fn,
        "ct_mu",
        ct_mu,
        cases,
        "mu(k) = exp(s0 ln(mu0) / N(k)) with N(k) of Exercise 5.2.",
        code_variant,
    )
    return "equals App. C's mu(k), with mu(0) = mu0."


@_exercise("ict_N", "5.4", "iCT's doubling curriculum N(k)")
def check_ict_N(fn) -> str:
    """N(k) = min(s0 2^floor(k/K'), s1) + 1, K' = floor(K / (log2 floor(s1/s0) + 1))
    (Song & Dhariwal 2024, Sec. 3.4), against ``ict_N``."""
    K = 400_000
    cases = [(k, K, 10, 1280) for k in (0, 49_999, 50_000, 100_000, 349_999, 350_000, K)]
    cases += [(k, 3000, 10, 80) for k in (0, 749, 750, 2999, 3000)]

    def no_plus_one(k, K, s0, s1):
        return [
            (
                "add 1: N counts grid points, one more than the s0 2^... intervals.",
                ict_N(k, K, s0, s1) - 1,
            )
        ]

    _check_schedule(
        fn,
        "ict_N",
        ict_N,
        cases,
        "K' = floor(K / (log2(floor(s1 / s0)) + 1)); N(k) = min(s0 * 2^floor(k / K'), s1) + 1.",
        no_plus_one,
    )
    return "equals iCT's curriculum (CIFAR-10: 11, 21, 41, ..., 1281 every 50k steps)."


@_exercise("ict_weight", "5.5", "iCT's weighting lambda(t_n)")
def check_ict_weight(fn) -> str:
    """lambda(t_n) = 1 / (t_{n+1} - t_n) (Song & Dhariwal 2024, Sec. 3.5) on grid pairs."""
    ts = karras_timesteps(18)
    t, t_next = ts[:-1], ts[1:]
    want = 1 / (t_next - t)
    _agree(
        "ict_weight(t, t_next)",
        fn(t, t_next),
        want,
        "lambda(t_n) = 1 / (t_{n+1} - t_n): large where the grid is fine.",
        [
            ("the sign is flipped: t_{n+1} > t_n, the weight is positive.", -want),
            ("that is the step itself; the weight is its inverse.", t_next - t),
        ],
    )
    return "equals 1 / (t_{n+1} - t_n) on the Karras grid, N = 18."


@_exercise("lognormal_probs", "5.6", "iCT's lognormal index probabilities")
def check_lognormal_probs(fn) -> str:
    """p(n) proportional to cdf((ln t_{n+1} - P_mean) / P_std) - cdf((ln t_n - P_mean) / P_std)
    for n = 1..N-1 (Song & Dhariwal 2024, Sec. 3.5), from scipy's normal cdf."""
    for N, P_mean, P_std in ((11, -1.1, 2.0), (41, -1.1, 2.0), (18, 0.0, 1.0)):
        ts = karras_timesteps(N)
        cdf = torch.from_numpy(stats.norm.cdf((torch.log(ts).numpy() - P_mean) / P_std))
        mass = cdf[1:] - cdf[:-1]
        _agree(
            f"lognormal_probs(karras_grid({N}), {P_mean}, {P_std})",
            fn(ts, P_mean, P_std),
            mass / mass.sum(),
            "one probability per pair (t_n, t_{n+1}), i.e. N - 1 of them: the mass of "
            "ln t ~ N(P_mean, P_std^2) between ln t_n and ln t_{n+1}, normalised.",
            [("normalise: the probabilities must sum to 1.", mass)],
        )
    return "equals the normalised lognormal mass between grid neighbours (N - 1 values)."


@_exercise("pseudo_huber", "5.7", "the pseudo-Huber distance")
def check_pseudo_huber(fn) -> str:
    """d(x, y) = sqrt(||x - y||^2 + c^2) - c per sample, the norm over the whole sample
    (Song & Dhariwal 2024, Sec. 3.3), against ``cmedu.pseudo_huber``."""
    g = _gen(57)
    x, y = _randn(g, 16, 3, 4, 4), _randn(g, 16, 3, 4, 4)
    y[:4] = x[:4] + 1e-4 * _randn(g, 4, 3, 4, 4)  # some pairs in the quadratic regime
    c = 0.00054 * math.sqrt(48)
    want = pseudo_huber(x, y, c)
    sq = (x - y).pow(2).flatten(1)
    _agree(
        "pseudo_huber(x, y, c)",
        fn(x, y, c),
        want,
        "one distance per sample: sqrt(sum of (x - y)^2 over all its entries + c^2) - c.",
        [
            (
                "sum the squares over the sample's entries, not their mean.",
                torch.sqrt(sq.mean(1) + c**2) - c,
            ),
            ("subtract c, so that d(x, x) = 0.", torch.sqrt(sq.sum(1) + c**2)),
        ],
    )
    return "matches cmedu.pseudo_huber on images (B, 3, 4, 4), near and far pairs."


# --- Notebook 6: sampling -------------------------------------------------------------------


def _toy_f(x: Tensor, t) -> Tensor:
    """A smooth stand-in for f_theta with the boundary condition (Eq. (5))."""
    t = torch.as_tensor(t, dtype=x.dtype)
    return c_skip(t) * x + c_out(t) * torch.tanh(x)


@_exercise("multistep_sample", "6.1", "multistep consistency sampling, Algorithm 1")
def check_multistep_sample(fn) -> str:
    """Algorithm 1 with given noises, against ``multistep_sample`` drawing the same noises.
    eps = 0.5 here, so that sqrt(tau^2 - eps^2) differs visibly from tau."""
    eps, taus = 0.5, [80.0, 2.0, 0.8]
    g = _gen(61)
    x_T = 80.0 * _randn(g, 32, 2)
    g_draw = _gen(63)  # draws the same noises, in the same order, as multistep_sample
    zs = [torch.randn(32, 2, generator=g_draw, dtype=F64) for _ in taus[1:]]
    want = multistep_sample(_toy_f, x_T, taus, generator=_gen(63), eps=eps)
    x = _toy_f(x_T, 80.0)
    for tau, z in zip(taus[1:], zs):
        x = _toy_f(x + tau * z, tau)
    _agree(
        "multistep_sample(f, x_T, taus, zs, eps)",
        fn(_toy_f, x_T, taus, zs, eps),
        want,
        "x = f(x_T, T); then for each tau_n and its z: x = f(x + sqrt(tau_n^2 - eps^2) z, tau_n).",
        [
            (
                "re-noise with standard deviation sqrt(tau_n^2 - eps^2), not tau_n: x already "
                "carries the noise level eps.",
                x,
            )
        ],
    )
    one = fn(_toy_f, x_T, taus[:1], [], eps)
    _agree("multistep_sample with one step", one, _toy_f(x_T, 80.0), "one step is f(x_T, T).")
    return "matches Algorithm 1 (cmedu.multistep_sample) with 1 and 3 steps."


@_exercise("default_times", "6.2", "the default time points")
def check_default_times(fn) -> str:
    """T, then the interior points of a descending Karras grid with steps + 1 points
    (Sec. 4, Algorithm 1), against ``default_times``."""
    for steps in (1, 2, 4):
        want = default_times(steps)
        grid = karras_timesteps(steps + 1).flip(0)
        _agree(
            f"default_times({steps})",
            fn(steps),
            want,
            "a descending Karras grid with steps + 1 points, without its last point eps.",
            [
                ("drop eps: the last step is f(x, tau) at the smallest tau above eps.", grid),
                ("descending: Algorithm 1 starts at T.", want.flip(0)),
            ],
        )
    return "equals cmedu.default_times for 1, 2 and 4 steps (two steps: 80, 2.52)."


# --- Notebook 9: zero-shot editing ----------------------------------------------------------


@_exercise("inpaint_replace", "9.1", "the replacement step of Algorithm 4 for inpainting")
def check_inpaint_replace(fn) -> str:
    """x <- y (1 - Omega) + x Omega (Algorithm 4 with A = I), against ``editing.impose``; the
    kept entries must equal y exactly."""
    g = _gen(91)
    x, y = _randn(g, 8, 3, 4, 4), _randn(g, 8, 3, 4, 4)
    mask = (torch.rand(8, 1, 4, 4, generator=g, dtype=F64) < 0.5).to(F64)
    want = editing.impose(x, y, mask)
    _agree(
        "inpaint_replace(x, y, mask)",
        fn(x, y, mask),
        want,
        "Omega = 1 marks what is generated (taken from x), 0 what is kept (from y).",
        [
            (
                "the mask is inverted: Omega = 1 is the part to generate, taken from x.",
                editing.impose(y, x, mask),
            )
        ],
    )
    return "matches Algorithm 4's replacement with A = I; the kept pixels equal y."


@_exercise("edit_step", "9.2", "one step of Algorithm 4")
def check_edit_step(fn) -> str:
    """Algorithm 4, step n >= 2: x <- x + sqrt(t_n^2 - eps^2) z; x <- f(x, t_n); then the
    replacement with A = I. eps = 0.5 so that the noise level shows."""
    g, eps, t = _gen(92), 0.5, 2.0
    x, y, z = _randn(g, 16, 2), _randn(g, 16, 2), _randn(g, 16, 2)
    mask = torch.tensor([[0.0, 1.0]], dtype=F64)  # keep x_1, generate x_2
    generated = _toy_f(x + math.sqrt(t**2 - eps**2) * z, t)
    want = editing.impose(generated, y, mask)
    _agree(
        "edit_step(f, x, y, mask, t, z, eps)",
        fn(_toy_f, x, y, mask, t, z, eps),
        want,
        "re-noise x with sqrt(t^2 - eps^2) z, apply f at t, then re-impose y where "
        "mask = 0 (Exercise 9.1).",
        [
            ("re-impose the known part of y after f (the last line of the loop).", generated),
            (
                "re-noise with standard deviation sqrt(t^2 - eps^2), not t.",
                editing.impose(_toy_f(x + t * z, t), y, mask),
            ),
        ],
    )
    return "matches a step of Algorithm 4 with A = I; the kept coordinate equals y."


@_exercise("slerp", "9.3", "spherical interpolation of noises")
def check_slerp(fn) -> str:
    """z = sin((1-a) psi)/sin psi z1 + sin(a psi)/sin psi z2 (App. D), per sample, against
    ``editing.slerp``; it keeps the norm where linear interpolation shrinks it."""
    g = _gen(93)
    z1, z2 = 80 * _randn(g, 8, 3, 8, 8), 80 * _randn(g, 8, 3, 8, 8)
    for alpha in (0.0, 0.3, 0.5, 1.0):
        want = editing.slerp(z1, z2, alpha)
        _agree(
            f"slerp(z1, z2, alpha={alpha})",
            fn(z1, z2, alpha),
            want,
            "psi = arccos(z1 . z2 / (|z1| |z2|)) per sample, over all its entries.",
            [
                (
                    "that is linear interpolation, which shrinks the norm by up to sqrt(2) "
                    "halfway between two independent noises.",
                    (1 - alpha) * z1 + alpha * z2,
                )
            ],
            rtol=1e-7,
            atol=1e-9,
        )
    return "matches cmedu.editing.slerp: exact end points, the norm kept halfway."
