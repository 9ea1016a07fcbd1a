"""The consistency-model parameterisation (Song et al. 2023, Eq. (5) and App. C).

    f_theta(x, t) = c_skip(t) x + c_out(t) F_theta(c_in(t) x, c_noise(t))

with the EDM scalings shifted by eps so that c_skip(eps) = 1 and c_out(eps) = 0: the
boundary condition f_theta(x, eps) = x holds exactly, for any network F. The EDM
denoiser that serves as a distillation teacher uses the same form without the shift
(Karras et al. 2022, Eq. (7)).

Two later parameterisations sit beside them: sCM's TrigFlow consistency function
(``TrigFlowModel``, Lu & Song 2024) and MeanFlow's average velocity (``AverageVelocityModel``,
Geng et al. 2025).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import checks
from .constants import C_NOISE_SCALE, EPS, SIGMA_DATA, T
from .pfode import broadcast_time

MIN_NOISE_LEVEL = 1e-30  # sigma > 0: c_noise = ln(sigma) / 4 needs it


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


def infer_data_shape(net: nn.Module) -> tuple | None:
    """The shape D of one sample that ``net`` takes, from its constructor arguments.

    A net may declare ``data_shape`` itself; the toy MLP takes (dim,) and the U-Net
    (in_channels, H, W) at any H, W (``None`` in the returned shape). ``None`` if unknown.
    """
    if getattr(net, "data_shape", None) is not None:
        return tuple(net.data_shape)
    if isinstance(getattr(net, "config", None), dict) and "dim" in net.config:
        return (net.config["dim"],)  # ToyMLP
    if hasattr(net, "in_channels") and hasattr(net, "img_resolution"):
        return (net.in_channels, None, None)  # UNet: any resolution its levels divide
    return None


class _Preconditioned(nn.Module):
    """The shared checks of a preconditioned network: data shape and noise level."""

    def __init__(self, net: nn.Module, data_shape=None):
        super().__init__()
        self.net = net
        self.data_shape = tuple(data_shape) if data_shape is not None else infer_data_shape(net)

    def _time(self, x: Tensor, t, lo: float, hi: float, interval=None) -> Tensor:
        """Check x and t; t (a scalar or shape (B,)) as shape (B,), float32 at least.

        Tensor times inside ``checks.checked()`` are not read back (see ``cmedu.checks``).
        """
        if self.data_shape is None:
            checks.check_tensor("x", x)
        else:
            checks.check_data_shape("x", x, self.data_shape)
        p = next(self.net.parameters(), None)
        if p is not None and p.device != x.device:
            raise ValueError(
                f"x: expected a tensor on the model's device {p.device}, got {x.device}"
            )
        if isinstance(t, Tensor) and t.ndim > 1:
            raise ValueError(f"t: expected a scalar or shape (B,), got shape {tuple(t.shape)}")
        if not isinstance(t, Tensor) or not checks.inside_checked():
            checks.check_times("t", t, lo, hi, interval=interval)
        t = broadcast_time(t, x, dtype=torch.promote_types(x.dtype, torch.float32))
        return t.reshape(-1).expand(x.shape[0])


class ConsistencyModel(_Preconditioned):
    """f_theta(x, t) = c_skip(t) x + c_out(t) F(c_in(t) x, c_noise(t)): Eq. (5), App. C.

    Call as ``model(x, t)`` with x of shape (B, *D) and t a scalar or shape (B,) in
    [eps, T]; other shapes and times raise a ValueError that says what was expected.

    Parameters
    ----------
    net : nn.Module
        Any network F(x_in, c_noise) with x_in shaped like x and c_noise of shape (B,).
    sigma_data, eps, T : float
        Data standard deviation and time range; f(x, eps) = x exactly.
    data_shape : tuple, optional
        The shape D of one sample (``None`` entries: any size). Default: from the net
        (``infer_data_shape``); unknown means only x's type is checked.
    """

    def __init__(
        self, net: nn.Module, sigma_data: float = SIGMA_DATA, eps: float = EPS, T=T,
        data_shape=None,
    ):  # fmt: skip
        super().__init__(net, data_shape)
        self.sigma_data, self.eps, self.T = sigma_data, eps, T

    def forward(self, x: Tensor, t) -> Tensor:
        t = self._time(x, t, self.eps, self.T)  # (B,), float32 at least
        ts = broadcast_time(t, x)  # (B, 1, ..., 1), x's dtype
        F = self.net(c_in(ts, self.sigma_data) * x, c_noise(t))
        skip, out = c_skip(ts, self.sigma_data, self.eps), c_out(ts, self.sigma_data, self.eps)
        return skip * x + out * F.to(x.dtype)


class EDMDenoiser(_Preconditioned):
    """D_theta(x, sigma) = c_skip x + c_out F(c_in x, c_noise): EDM preconditioning, Eq. (7).

    The unshifted scalings c_skip = sigma_data^2 / (sigma^2 + sigma_data^2) and
    c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2) of Karras et al. 2022; used as
    the diffusion teacher for consistency distillation. Also accepted by ``solve_pf_ode``.
    sigma must be a positive finite number (a scalar or shape (B,)).
    """

    def __init__(self, net: nn.Module, sigma_data: float = SIGMA_DATA, data_shape=None):
        super().__init__(net, data_shape)
        self.sigma_data = sigma_data

    def forward(self, x: Tensor, sigma) -> Tensor:
        sigma = self._time(x, sigma, MIN_NOISE_LEVEL, math.inf, "(0, inf), a noise level")
        s = broadcast_time(sigma, x)  # (B, 1, ..., 1), x's dtype
        F = self.net(c_in(s, self.sigma_data) * x, c_noise(sigma))
        skip = c_skip(s, self.sigma_data, eps=0.0)
        out = c_out(s, self.sigma_data, eps=0.0)
        return skip * x + out * F.to(x.dtype)


def trigflow_T(sigma_max: float = T, sigma_d: float = SIGMA_DATA) -> float:
    """arctan(sigma_max / sigma_d): the TrigFlow time of EDM's largest noise level, where
    sCM's samplers start (Lu & Song 2024, App. G.2; sigma = sigma_d tan t, their Eq. (30)).
    1.5645 for 80, 0.5."""
    return math.atan(sigma_max / sigma_d)


class TrigFlowModel(_Preconditioned):
    """f_theta(x_t, t) = cos(t) x_t - sin(t) sigma_d F_theta(x_t / sigma_d, c_noise(t)): the
    TrigFlow consistency model of sCM (Lu & Song 2024, Eq. (5), Sec. 3), with c_noise(t) = t
    (its Sec. 4.1). f(x, 0) = x for any network F.

    It is EDM's form (Karras et al. 2022, Eq. (7)) with c_skip = cos t, c_out = -sigma_d sin t,
    c_in = 1 / sigma_d. Call ``model(x, t)`` for f, ``model(x, t, raw=True)`` for F; t is a
    scalar or shape (B,) in [0, pi/2]. ``T`` is where sampling starts (``trigflow_T``);
    ``eps`` = 0, the time at which f is the identity.
    """

    eps = 0.0

    def __init__(self, net: nn.Module, sigma_d: float = SIGMA_DATA, T: float | None = None,
                 data_shape=None):  # fmt: skip
        super().__init__(net, data_shape)
        self.sigma_d = sigma_d
        self.T = trigflow_T(sigma_d=sigma_d) if T is None else T

    def forward(self, x: Tensor, t, raw: bool = False) -> Tensor:
        t = self._time(x, t, 0.0, math.pi / 2)  # (B,)
        F = self.net(x / self.sigma_d, t).to(x.dtype)  # $F_\theta(x_t / \sigma_d, t)$
        if raw:
            return F
        ts = broadcast_time(t, x)
        # $f_\theta = \cos t\, x_t - \sin t\, \sigma_d F_\theta$
        return torch.cos(ts) * x - torch.sin(ts) * self.sigma_d * F


class AverageVelocityModel(_Preconditioned):
    """u_theta(z, r, t) = F_theta(z, (t, t - r)): MeanFlow's average velocity over [r, t]
    (Geng et al. 2025, Eq. (3)), the network conditioned on t and the interval t - r (its
    Table 1c). No preconditioning, as in the paper.

    Call ``model(z, r, t)`` with z of shape (B, *D) and r <= t in [0, 1] (scalars or (B,));
    the net takes two time inputs (``time_inputs=2``). ``T`` = 1 (noise), ``eps`` = 0 (data).
    """

    eps, T = 0.0, 1.0

    def forward(self, z: Tensor, r, t) -> Tensor:
        t = self._time(z, t, 0.0, 1.0)
        r = self._time(z, r, 0.0, 1.0)
        return self.net(z, torch.stack([t, t - r], dim=1)).to(z.dtype)  # $u_\theta(z, r, t)$
