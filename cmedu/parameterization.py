"""The consistency-model parameterisation (Song et al. 2023, Eq. (5) and App. C).

    f_theta(x, t) = c_skip(t) x + c_out(t) F_theta(c_in(t) x, c_noise(t))

with the EDM scalings shifted by eps so that c_skip(eps) = 1 and c_out(eps) = 0: the
boundary condition f_theta(x, eps) = x holds exactly, for any network F. The EDM
denoiser that serves as a distillation teacher uses the same form without the shift
(Karras et al. 2022, Eq. (7)).
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .constants import C_NOISE_SCALE, EPS, SIGMA_DATA, T
from .pfode import _expand


def c_skip(t: Tensor, sigma_data: float = SIGMA_DATA, eps: float = EPS) -> Tensor:
    """c_skip(t) = sigma_data^2 / ((t - eps)^2 + sigma_data^2)  (App. C, Song et al. 2023)."""
    return sigma_data**2 / ((t - eps) ** 2 + sigma_data**2)


def c_out(t: Tensor, sigma_data: float = SIGMA_DATA, eps: float = EPS) -> Tensor:
    """c_out(t) = sigma_data (t - eps) / sqrt(sigma_data^2 + t^2)  (App. C, Song et al. 2023).

    The denominator uses t, not t - eps, as in the paper and its code.
    """
    return sigma_data * (t - eps) / (sigma_data**2 + t**2) ** 0.5


def c_in(t: Tensor, sigma_data: float = SIGMA_DATA) -> Tensor:
    """c_in(t) = 1 / sqrt(t^2 + sigma_data^2): unit-variance network input (EDM Table 1)."""
    return 1 / (t**2 + sigma_data**2) ** 0.5


def c_noise(t: Tensor) -> Tensor:
    """c_noise(t) = 0.25 ln t: the noise level the network is conditioned on (EDM Table 1)."""
    return C_NOISE_SCALE * torch.log(t)


def _per_sample_time(t, x: Tensor) -> Tensor:
    """t as a tensor of shape (B,) on x's device, from a scalar or shape (B,)."""
    t = torch.as_tensor(t, dtype=torch.float32 if x.dtype == torch.bfloat16 else x.dtype)
    return t.to(x.device).expand(x.shape[0]) if t.ndim == 0 else t.to(x.device)


class ConsistencyModel(nn.Module):
    """f_theta(x, t) = c_skip(t) x + c_out(t) F(c_in(t) x, c_noise(t)): Eq. (5), App. C.

    Call as ``model(x, t)`` with x of shape (B, *D) and t a scalar or shape (B,). In eval
    mode, times outside [eps, T] raise a ValueError.

    Parameters
    ----------
    net : nn.Module
        Any network F(x_in, c_noise) with x_in shaped like x and c_noise of shape (B,).
    sigma_data, eps, T : float
        Data standard deviation and time range; f(x, eps) = x exactly.
    """

    def __init__(self, net: nn.Module, sigma_data: float = SIGMA_DATA, eps: float = EPS, T=T):
        super().__init__()
        self.net = net
        self.sigma_data, self.eps, self.T = sigma_data, eps, T

    def forward(self, x: Tensor, t) -> Tensor:
        t = _per_sample_time(t, x)
        if not self.training:
            _check_range(t, self.eps, self.T)
        ts = _expand(t, x)
        F = self.net(c_in(ts, self.sigma_data) * x, c_noise(t))
        skip, out = c_skip(ts, self.sigma_data, self.eps), c_out(ts, self.sigma_data, self.eps)
        return skip * x + out * F.to(x.dtype)


class EDMDenoiser(nn.Module):
    """D_theta(x, sigma) = c_skip x + c_out F(c_in x, c_noise): EDM preconditioning, Eq. (7).

    The unshifted scalings c_skip = sigma_data^2 / (sigma^2 + sigma_data^2) and
    c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2) of Karras et al. 2022; used as
    the diffusion teacher for consistency distillation. Also accepted by ``solve_pf_ode``.
    """

    def __init__(self, net: nn.Module, sigma_data: float = SIGMA_DATA):
        super().__init__()
        self.net, self.sigma_data = net, sigma_data

    def forward(self, x: Tensor, sigma) -> Tensor:
        sigma = _per_sample_time(sigma, x)
        s = _expand(sigma, x)
        F = self.net(c_in(s, self.sigma_data) * x, c_noise(sigma))
        skip = c_skip(s, self.sigma_data, eps=0.0)
        out = c_out(s, self.sigma_data, eps=0.0)
        return skip * x + out * F.to(x.dtype)


def _check_range(t: Tensor, eps: float, T: float) -> None:
    lo, hi = float(t.min()), float(t.max())
    if lo < eps * (1 - 1e-6) or hi > T * (1 + 1e-6):
        bad = lo if lo < eps * (1 - 1e-6) else hi
        raise ValueError(f"time {bad:g} is outside [eps, T] = [{eps:g}, {T:g}]")
