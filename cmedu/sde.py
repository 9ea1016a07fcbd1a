"""The variance-exploding SDE of Song et al. 2023, Sec. 2, and its reverse-time SDE.

Eq. (1) with mu = 0 and sigma(t) = sqrt(2t) gives the forward SDE dx = sqrt(2t) dw, whose
marginal at time t is p_data convolved with N(0, t^2 I); the reverse-time SDE (Anderson 1982)
dx = -2t grad log p_t(x) dt + sqrt(2t) dw-bar has the same marginals, and the PF-ODE, Eq. (2),
is its deterministic counterpart. These paths are for comparison with the PF-ODE.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .pfode import denoiser_to_score


def forward_sde_paths(x0: Tensor, ts: Tensor, generator=None) -> Tensor:
    """Brownian paths of the forward SDE dx = sqrt(2t) dw, Eq. (1) (Song et al. 2023, Sec. 2),
    from data x0 at ts[0] (0 or eps).

    The increment from t_i to t_{i+1} is N(0, (t_{i+1}^2 - t_i^2) I), so x_t ~ N(x0, t^2 I)
    when ts[0] = 0. ts ascending; returns shape (len(ts), B, d).
    """
    ts = torch.as_tensor(ts, dtype=x0.dtype, device=x0.device)
    var = (ts[1:] ** 2 - ts[:-1] ** 2).clamp_min(0)
    z = torch.randn((len(var), *x0.shape), generator=generator, dtype=x0.dtype, device=x0.device)
    steps = var.sqrt().reshape(-1, *[1] * x0.ndim) * z
    return torch.cat([x0[None], x0[None] + steps.cumsum(0)])


def reverse_sde_paths(x_T: Tensor, denoiser, ts: Tensor, generator=None) -> Tensor:
    """Euler-Maruyama paths of the reverse-time SDE dx = -2t grad log p_t(x) dt + sqrt(2t) dw
    (Anderson 1982; Song et al. 2023, Sec. 2).

    With D(x, t) = x + t^2 grad log p_t(x), a step from t_cur down to t_next is
    x <- x + (t_cur^2 - t_next^2) s(x, t_cur) + sqrt(t_cur^2 - t_next^2) z. ts descending;
    returns shape (len(ts), B, d).
    """
    ts = torch.as_tensor(ts, dtype=x_T.dtype, device=x_T.device)
    score_fn = denoiser_to_score(denoiser)  # s = (D - x) / t^2
    x, path = x_T, [x_T]
    for t_cur, t_next in zip(ts[:-1], ts[1:]):
        dvar = t_cur**2 - t_next**2
        z = torch.randn(x.shape, generator=generator, dtype=x.dtype, device=x.device)
        x = x + dvar * score_fn(x, t_cur) + dvar.sqrt() * z
        path.append(x)
    return torch.stack(path)
