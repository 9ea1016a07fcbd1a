"""The probability flow ODE and its time grid (Song et al. 2023, Sec. 2 and 4).

With mu = 0 and sigma(t) = sqrt(2t) (Karras et al. 2022), the forward SDE of Eq. (1) gives
p_t = p_data * N(0, t^2 I): time t *is* the noise standard deviation. The PF-ODE, Eq. (2),
then reads

    dx/dt = -t grad log p_t(x)                                    (Eq. (3), exact score)
          = (x - D(x, t)) / t,                    with D(x, t) = E[x_0 | x_t = x],

where the second form uses Tweedie's formula D = x + t^2 grad log p_t. Models in cmedu
are called as *denoisers* D(x, t); a score s(x, t) is turned into one by
``score_to_denoiser``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from . import checks
from .constants import EPS, RHO, T
from .constants import T as T_PAPER  # the name T is taken by arguments below

Denoiser = Callable[[Tensor, Tensor], Tensor]


def karras_timesteps(
    N: int, eps: float = EPS, T: float = T, rho: float = RHO, *, dtype=torch.float64
) -> Tensor:
    """The time grid of Song et al. 2023, Sec. 4, **ascending**: t_1 = eps < ... < t_N = T.

        t_i = (eps^{1/rho} + (i-1)/(N-1) (T^{1/rho} - eps^{1/rho}))^rho,  i = 1..N.

    Index 0 of the returned tensor is t_1 = eps and index N-1 is t_N = T. Flip it
    (``ts.flip(0)``) for the descending order in which samplers integrate.

    Returns
    -------
    Tensor, shape (N,)
    """
    checks.check_count("N", N, 2, "a grid holds both eps and T")
    checks.check_number("eps", eps, 0.0)
    if not 0 < eps < T:
        raise ValueError(f"eps, T: expected 0 < eps < T, got eps={eps}, T={T}")
    i = torch.arange(N, dtype=dtype)
    ts = (eps ** (1 / rho) + i / (N - 1) * (T ** (1 / rho) - eps ** (1 / rho))) ** rho
    ts[0], ts[-1] = eps, T  # exact endpoints despite rounding in the power
    return ts


def time_range(model, eps: float | None = None, T: float | None = None) -> tuple[float, float]:
    """[eps, T] of a model: the given values, else the model's own ``eps`` and ``T`` (e.g.
    a ``cmedu.data_scale.DataScaled`` model's s eps and s T), else the paper's (App. C)."""
    eps = getattr(model, "eps", EPS) if eps is None else eps
    return eps, getattr(model, "T", T_PAPER) if T is None else T


def check_times(ts, eps: float = EPS, T: float = T, *, descending: bool = False) -> Tensor:
    """``checks.check_times("time points", ...)`` under its former name and signature."""
    return checks.check_times("time points", ts, eps, T, descending=descending)


def score_to_denoiser(score: Callable[[Tensor, Tensor], Tensor]) -> Denoiser:
    """D(x, t) = x + t^2 s(x, t): Tweedie's formula (see Lemma 1, Song et al. 2023)."""

    def denoiser(x: Tensor, t: Tensor) -> Tensor:
        return x + broadcast_time(t, x) ** 2 * score(x, t)

    return denoiser


def denoiser_to_score(denoiser: Denoiser) -> Callable[[Tensor, Tensor], Tensor]:
    """s(x, t) = (D(x, t) - x) / t^2: Tweedie's formula read backwards (see Lemma 1, Song
    et al. 2023), the inverse of ``score_to_denoiser``."""

    def score(x: Tensor, t: Tensor) -> Tensor:
        return (denoiser(x, t) - x) / broadcast_time(t, x) ** 2

    return score


def as_denoiser(model) -> Denoiser:
    """The denoiser D(x, t) of the PF-ODE dx/dt = (x - D(x, t)) / t, Eq. (3) in denoiser form.

    ``model`` is an object with a ``.denoise(x, t)`` method (``GaussianMixture``) or a
    callable D(x, t).
    """
    return model.denoise if hasattr(model, "denoise") else model


def pf_ode_drift(denoiser: Denoiser, x: Tensor, t: Tensor) -> Tensor:
    """dx/dt = (x - D(x, t)) / t: the empirical PF-ODE, Eq. (3) of Song et al. 2023."""
    return (x - denoiser(x, t)) / broadcast_time(t, x)


def prior_sample(shape, T: float = T, generator=None, device=None, dtype=torch.float32) -> Tensor:
    """x_T ~ N(0, T^2 I), the prior pi of Song et al. 2023, Sec. 2."""
    checks.check_number("T", T, 0.0)
    shape = checks.check_shape("shape", shape)
    if generator is not None:
        device = generator.device
    return T * torch.randn(shape, generator=generator, device=device, dtype=dtype)


def broadcast_time(t, x: Tensor, dtype: torch.dtype | None = None) -> Tensor:
    """t as a tensor on x's device that broadcasts against x: the one way times meet data.

    A scalar t stays 0-d; one time per sample, of shape x.shape[:k] (k = 1 for a batch
    (B, *D), k = x.ndim - 1 for points (..., d)), becomes x.shape[:k] + (1,) * (x.ndim - k).
    ``dtype`` defaults to x's. Raises ValueError if t's shape is neither.
    """
    t = torch.as_tensor(t, dtype=x.dtype if dtype is None else dtype, device=x.device)
    if t.ndim and tuple(t.shape) != tuple(x.shape[: t.ndim]):
        raise ValueError(
            f"t: expected a scalar or one time per sample, shape {tuple(x.shape[:1])} for "
            f"x of shape {tuple(x.shape)}, got shape {tuple(t.shape)}"
        )
    return t.reshape(tuple(t.shape) + (1,) * (x.ndim - t.ndim))
