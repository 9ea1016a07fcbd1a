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

from .constants import EPS, RHO, T

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
    if N < 2:
        raise ValueError(f"a grid needs N >= 2 points, got N={N}")
    if not 0 < eps < T:
        raise ValueError(f"need 0 < eps < T, got eps={eps}, T={T}")
    i = torch.arange(N, dtype=dtype)
    ts = (eps ** (1 / rho) + i / (N - 1) * (T ** (1 / rho) - eps ** (1 / rho))) ** rho
    ts[0], ts[-1] = eps, T  # exact endpoints despite rounding in the power
    return ts


def check_times(ts, eps: float = EPS, T: float = T, *, descending: bool = False) -> Tensor:
    """Validate time points: every t in [eps, T] (and strictly descending if asked).

    [eps, T] is the interval on which the consistency function is defined (Song et al.
    2023, Sec. 3); sampling times (Algorithm 1) must lie in it. Returns the times as a
    float64 tensor; raises ValueError naming the offending value.
    """
    ts = torch.as_tensor(ts, dtype=torch.float64).reshape(-1)
    tol = 1e-9 * T
    bad = (ts < eps - tol) | (ts > T + tol) | ~torch.isfinite(ts)
    if bool(bad.any()):
        raise ValueError(f"time {ts[bad][0].item():g} is outside [eps, T] = [{eps:g}, {T:g}]")
    if descending and bool((ts[1:] >= ts[:-1]).any()):
        raise ValueError(f"time points must be strictly descending, got {ts.tolist()}")
    return ts


def score_to_denoiser(score: Callable[[Tensor, Tensor], Tensor]) -> Denoiser:
    """D(x, t) = x + t^2 s(x, t): Tweedie's formula (see Lemma 1, Song et al. 2023)."""

    def denoiser(x: Tensor, t: Tensor) -> Tensor:
        return x + _expand(t, x) ** 2 * score(x, t)

    return denoiser


def denoiser_to_score(denoiser: Denoiser) -> Callable[[Tensor, Tensor], Tensor]:
    """s(x, t) = (D(x, t) - x) / t^2: Tweedie's formula read backwards (see Lemma 1, Song
    et al. 2023), the inverse of ``score_to_denoiser``."""

    def score(x: Tensor, t: Tensor) -> Tensor:
        return (denoiser(x, t) - x) / _expand(t, x) ** 2

    return score


def as_denoiser(model) -> Denoiser:
    """The denoiser D(x, t) of the PF-ODE dx/dt = (x - D(x, t)) / t, Eq. (3) in denoiser form.

    ``model`` is an object with a ``.denoise(x, t)`` method (``GaussianMixture``) or a
    callable D(x, t).
    """
    return model.denoise if hasattr(model, "denoise") else model


def pf_ode_drift(denoiser: Denoiser, x: Tensor, t: Tensor) -> Tensor:
    """dx/dt = (x - D(x, t)) / t: the empirical PF-ODE, Eq. (3) of Song et al. 2023."""
    return (x - denoiser(x, t)) / _expand(t, x)


def prior_sample(shape, T: float = T, generator=None, device=None, dtype=torch.float32) -> Tensor:
    """x_T ~ N(0, T^2 I), the prior pi of Song et al. 2023, Sec. 2."""
    if generator is not None:
        device = generator.device
    return T * torch.randn(shape, generator=generator, device=device, dtype=dtype)


def _expand(t, x: Tensor) -> Tensor:
    """Reshape a scalar or per-sample t of shape (B,) to broadcast against x (B, ...)."""
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        return t
    return t.reshape(-1, *([1] * (x.ndim - 1)))
