"""Continuous-time consistency models under TrigFlow: sCT and sCD (Lu & Song 2024, "sCM").

TrigFlow writes x_t = cos(t) x_0 + sin(t) z, z ~ N(0, sigma_d^2 I), t in [0, pi/2] (Sec. 3);
the consistency model is f_theta(x_t, t) = cos(t) x_t - sin(t) sigma_d F_theta(x_t / sigma_d, t),
Eq. (5) (``parameterization.TrigFlowModel``). In continuous time the gradient of the
consistency objective is that of E[w(t) f_theta^T df_{theta^-}/dt] (Eq. (2)), with the tangent

    df_{theta^-}/dt = -cos t (sigma_d F^- - dx_t/dt) - sin t (x_t + sigma_d dF^-/dt),   Eq. (6)

where dx_t/dt = cos(t) z - sin(t) x_0 for sCT (the conditional velocity) or the teacher's
velocity for sCD, and dF^-/dt, the total derivative along the path, comes from one
forward-mode product ``torch.func.jvp`` with tangents (dx_t/dt, 1) (Sec. 4.1, 5.1). The
stabilisers of Sec. 4.2, as in Algorithm 1 (App. A):

* tangent warm-up: the sin t term is multiplied by r = min(1, k / H), H = 10k;
* tangent normalisation: g <- g / (||g|| + c), c = 0.1;
* adaptive weighting, Eq. (8): L = e^{w_phi(t)} / D ||F_theta - F_theta^- - g||^2 - w_phi(t),
  with a small learned w_phi; its minimum over w_phi weights each t by the inverse of its
  loss (App. D).

Here g = cos(t) df^-/dt. Since F_theta^T y has the gradient of ||F_theta - F^- + y||^2 / 2, the
squared error with g = lambda(t) sigma_d sin(t) df^-/dt has, at theta = theta^-, the gradient
of E[lambda(t) f_theta^T df^-/dt] (up to a factor 2 / D); the prior weight
lambda(t) = 1 / (sigma_d tan t) of Sec. 4.2 and App. D turns sigma_d sin t into cos t, so it
lives inside g and the squared error is not weighted again (``prior_weight=False`` gives
lambda = 1, g = sigma_d sin(t) df^-/dt). Times are drawn by ln(sigma_d tan t) ~
N(P_mean, P_std^2) (Sec. 4.2), i.e. EDM's lognormal over sigma = sigma_d tan t.

Choice: w_phi is a two-layer MLP on sinusoidal features of t, its last layer zero so that
training starts at w = 0 (the paper defers to EDM2's weighting network).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from . import checks
from .constants import SCM_P_MEAN, SCM_P_STD, SCM_TANGENT_C, SCM_TWO_STEP_T, SCM_WARMUP_STEPS
from .losses import LossOutput, Objective, check_loss_inputs, same_dropout
from .parameterization import TrigFlowModel
from .pfode import as_denoiser, broadcast_time, karras_timesteps


def sample_trigflow_time(B: int, P_mean: float, P_std: float, sigma_d: float, T: float,
                         generator=None) -> Tensor:  # fmt: skip
    """t = arctan(e^tau / sigma_d), tau ~ N(P_mean, P_std^2), at most T, shape (B,), float64:
    sCM's proposal, lognormal in sigma = sigma_d tan t (Lu & Song 2024, Sec. 4.2 below
    Eq. (8), and Algorithm 1)."""
    device = generator.device if generator is not None else torch.device("cpu")
    tau = P_mean + P_std * torch.randn(B, generator=generator, device=device, dtype=torch.float64)
    return torch.atan(torch.exp(tau) / sigma_d).clamp(max=T)


def teacher_velocity(teacher, x_t: Tensor, t: Tensor, sigma_d: float) -> Tensor:
    """dx_t/dt of the TrigFlow PF-ODE (Lu & Song 2024, Eq. (3)) from an EDM denoiser D:
    x_t / cos t is the EDM point at sigma = sigma_d tan t (their Eq. (30), App. B.2), and with
    D = D(x_t / cos t, sigma),

        dx_t/dt = -sin t D + cos t (x_t - cos t D) / sin t.

    ``teacher``: a ``GaussianMixture`` (exact) or a trained ``EDMDenoiser``.
    """
    D = as_denoiser(teacher)
    c, s = torch.cos(t), torch.sin(t)
    x0 = D(x_t / broadcast_time(c, x_t), sigma_d * s / c)  # $D(x_t / \cos t, \sigma_d \tan t)$
    c, s = broadcast_time(c, x_t), broadcast_time(s, x_t)
    return -s * x0 + c * (x_t - c * x0) / s  # $\alpha' E[x_0] + \sigma' E[z]$


def consistency_tangent(model, x_t: Tensor, t: Tensor, dxt_dt: Tensor, warmup: float = 1.0):
    """(F^-, df^-/dt) of a ``TrigFlowModel`` along a path with velocity dx_t/dt: Eq. (6) of
    Lu & Song 2024 (Sec. 4.1),

        df/dt = -cos t (sigma_d F^- - dx_t/dt) - r sin t (x_t + sigma_d dF^-/dt),

    dF^-/dt by ``torch.func.jvp`` with tangents (dx_t/dt, 1); r = ``warmup`` in [0, 1]
    (tangent warm-up, Sec. 4.2; 1 gives the exact total derivative of f).
    """
    sigma_d = _trigflow(model).sigma_d
    F, dF_dt = torch.func.jvp(
        lambda x, tt: model(x, tt, raw=True), (x_t, t), (dxt_dt, torch.ones_like(t))
    )  # $F^-$, $dF^-/dt$
    c, s = broadcast_time(torch.cos(t), x_t), broadcast_time(torch.sin(t), x_t)
    return F, -c * (sigma_d * F - dxt_dt) - warmup * s * (x_t + sigma_d * dF_dt)


class AdaptiveWeight(nn.Module):
    """w_phi(t): sCM's learned log-weight (Lu & Song 2024, Eq. (8), App. D), a two-layer MLP on
    sinusoidal features of t with geometric frequencies 1 ... 1000, starting at w = 0."""

    def __init__(self, channels: int = 64):
        super().__init__()
        self.register_buffer("freqs", torch.logspace(0, 3, channels // 2), persistent=False)
        self.mlp = nn.Sequential(nn.Linear(channels, channels), nn.SiLU(), nn.Linear(channels, 1))
        nn.init.zeros_(self.mlp[-1].weight)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, t: Tensor) -> Tensor:
        """t : (B,) -> w_phi(t) : (B,)."""
        phase = torch.outer(t.float(), self.freqs)
        return self.mlp(torch.cat([phase.cos(), phase.sin()], dim=1)).squeeze(1)


class ContinuousConsistencyLoss(Objective):
    """sCT (``teacher=None``) or sCD: Eq. (8) and Algorithm 1 of Lu & Song 2024 (see the
    module's text).

    Parameters
    ----------
    teacher : GaussianMixture or EDMDenoiser, optional
        sCD's teacher (``teacher_velocity``); None: sCT, dx_t/dt = cos(t) z - sin(t) x_0.
    P_mean, P_std : float
        ln(sigma_d tan t) ~ N(P_mean, P_std^2).
    tangent_c : float
        c of the tangent normalisation g / (||g|| + c) (0.1; None: no normalisation).
    warmup_steps : int
        H of the tangent warm-up (10k in the paper; 0: none).
    adaptive : bool
        Learn w_phi(t) (``AdaptiveWeight``); False: w = 0, the fixed weighting.
    prior_weight : bool
        g = cos(t) df^-/dt, the prior weight 1 / (sigma_d tan t) of Sec. 4.2 applied to
        sigma_d sin(t) df^-/dt (the paper's); False: g = sigma_d sin(t) df^-/dt.
    """

    def __init__(self, teacher=None, P_mean=SCM_P_MEAN, P_std=SCM_P_STD, tangent_c=SCM_TANGENT_C,
                 warmup_steps=SCM_WARMUP_STEPS, adaptive=True, prior_weight=True):  # fmt: skip
        self.teacher, self.P_mean, self.P_std = teacher, P_mean, P_std
        self.tangent_c, self.warmup_steps, self.prior_weight = tangent_c, warmup_steps, prior_weight
        self.weight_net = AdaptiveWeight() if adaptive else None

    def N(self, k: int) -> int:
        """0: t is continuous (Lu & Song 2024, Sec. 4)."""
        return 0

    def warmup(self, k: int) -> float:
        """r = min(1, k / H): the tangent warm-up of Lu & Song 2024, Sec. 4.2."""
        return 1.0 if self.warmup_steps <= 0 else min(1.0, k / self.warmup_steps)

    def modules(self) -> list[nn.Module]:
        """The learned w_phi (Lu & Song 2024, Sec. 4.2), trained and saved with the model."""
        return [self.weight_net] if self.weight_net is not None else []

    def tangent(self, model, x0: Tensor, z: Tensor, t: Tensor, k: int):
        """(x_t, F^-, g) with g = cos(t) df^-/dt warmed up and normalised, as in Algorithm 1
        of Lu & Song 2024 (g = sigma_d sin(t) df^-/dt without the prior weight).
        x0 (B, *D) data, z (B, *D) noise of std sigma_d, t (B,)."""
        tt = broadcast_time(t, x0)
        x_t = torch.cos(tt) * x0 + torch.sin(tt) * z  # $x_t = \cos t\, x_0 + \sin t\, z$
        if self.teacher is None:
            dxt_dt = torch.cos(tt) * z - torch.sin(tt) * x0  # sCT: $\cos t\, z - \sin t\, x_0$
        else:
            dxt_dt = teacher_velocity(self.teacher, x_t, t, _trigflow(model).sigma_d)  # sCD
        F, df_dt = consistency_tangent(model, x_t, t, dxt_dt, self.warmup(k))
        if self.prior_weight:
            g = torch.cos(tt) * df_dt  # $g = \cos t\, df^-/dt$, Algorithm 1's rearrangement
        else:
            g = _trigflow(model).sigma_d * torch.sin(tt) * df_dt  # $\sigma_d \sin t\, df^-/dt$
        if self.tangent_c is not None:
            norm = g.flatten(1).norm(dim=1)
            g = g / broadcast_time(norm + self.tangent_c, g)  # $g / (\|g\| + c)$
        return x_t, F, g

    def __call__(self, model, target, x: Tensor, k: int = 0, generator=None, t=None, z=None):
        """The sCM loss, Eq. (8) of Lu & Song 2024, for a batch x of shape (B, *D) at step k.

        ``target`` is the online model itself (theta^- = stopgrad theta); t (B,) and z (noise
        of std sigma_d) may be given.
        """
        check_loss_inputs(model, x, k, z=z)
        m = _trigflow(model)
        t = sample_trigflow_time(x.shape[0], self.P_mean, self.P_std, m.sigma_d, m.T, generator
                                 ) if t is None else t  # fmt: skip
        t = t.to(device=x.device, dtype=x.dtype)
        if z is None:
            z = m.sigma_d * torch.randn(x.shape, generator=generator, device=x.device,
                                        dtype=x.dtype)  # fmt: skip
        with torch.no_grad(), checks.checked(), same_dropout(x.device):
            x_t, F_minus, g = self.tangent(target, x, z, t, k)
        with checks.checked():
            F = model(x_t, t, raw=True)  # $F_\theta(x_t / \sigma_d, t)$
        sq = (F - F_minus - g).flatten(1).pow(2).mean(1)  # $\|F_\theta - F_{\theta^-} - g\|^2 / D$
        w = self.weight_net(t).to(sq.dtype) if self.weight_net is not None else torch.zeros_like(sq)
        per_sample = torch.exp(w) * sq - w  # $e^{w_\phi(t)} \|\cdot\|^2 / D - w_\phi(t)$
        return LossOutput(per_sample.mean(), per_sample, torch.zeros_like(t).long(), 0)


def trigflow_times(steps: int, T: float, sigma_d: float) -> Tensor:
    """Default TrigFlow times for ``steps``-step sampling: [T], [T, 1.1] (sCM's 2-step time,
    Lu & Song 2024, Sec. 5.2 and App. G.2), else the Karras grid (Song et al. 2023, Sec. 4)
    mapped by t = arctan(sigma / sigma_d). float64, shape (steps,)."""
    checks.check_count("steps", steps, 1, "one step is f(x_T, T)")
    if steps <= 2:
        return torch.tensor([T, SCM_TWO_STEP_T][:steps], dtype=torch.float64)
    sigmas = karras_timesteps(steps + 1, T=sigma_d * math.tan(T)).flip(0)[:-1]
    return torch.atan(sigmas / sigma_d)


@torch.no_grad()
def trigflow_sample(model, z: Tensor, ts, generator=None, clip=None) -> Tensor:
    """Multistep consistency sampling (Song et al. 2023, Algorithm 1) in TrigFlow time (Lu &
    Song 2024, Sec. 3): x <- f(x_T, T) with x_T = z ~ N(0, sigma_d^2 I), then for each
    tau_n, x <- f(cos(tau_n) x + sin(tau_n) n, tau_n), n ~ N(0, sigma_d^2 I).

    ts : descending times in (0, pi/2], ts[0] the start. clip : clamp each f, e.g. (-1, 1).
    """
    m = _trigflow(model)
    ts = checks.check_times("ts", ts, 0.0, math.pi / 2, descending=True)
    clamp = (lambda y: y.clamp(*clip)) if clip is not None else (lambda y: y)
    x = clamp(model(z, float(ts[0])))  # $x \leftarrow f_\theta(x_T, T)$
    for tau in ts[1:].tolist():
        n = m.sigma_d * torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_tau = math.cos(tau) * x + math.sin(tau) * n  # $\cos\tau\, x + \sin\tau\, n$
        x = clamp(model(x_tau, tau))  # $x \leftarrow f_\theta(x_\tau, \tau)$
    return x


def _trigflow(model) -> TrigFlowModel:
    """The ``TrigFlowModel`` inside DDP / torch.compile wrappers."""
    for attr in ("module", "_orig_mod"):
        model = getattr(model, attr, model)
    if not isinstance(model, TrigFlowModel):
        raise ValueError(f"expected a TrigFlowModel (sCM), got {type(model).__name__}")
    return model
