"""MeanFlow: one-step generation by the average velocity (Geng et al. 2025).

On the linear path z_t = (1 - t) x + t eps, eps ~ N(0, I), t in [0, 1] (data at 0, noise at 1),
with conditional velocity v_t = eps - x, the average velocity over [r, t] is

    u(z_t, r, t) = 1/(t - r) int_r^t v(z_s, s) ds                        Eq. (3)

(``interpolants.average_velocity`` computes it exactly for a Gaussian mixture). Differentiating
(t - r) u in t gives the MeanFlow identity

    u(z_t, r, t) = v(z_t, t) - (t - r) d/dt u(z_t, r, t),                Eq. (6)
    d/dt u = v(z_t, t) d_z u + d_t u,                                     Eq. (8)

and the network u_theta (``parameterization.AverageVelocityModel``) regresses on its
right-hand side, under a stop-gradient:

    L = E || u_theta(z_t, r, t) - sg(u_tgt) ||^2,                          Eq. (9)
    u_tgt = v_t - (t - r) (v_t d_z u_theta + d_t u_theta),

Eq. (10) with the marginal velocity v(z_t, t) replaced by the conditional one v_t (Sec. 4.1),
the product (v_t d_z u + d_t u) being one ``torch.func.jvp`` with tangents (v_t, 0, 1). The
squared error is weighted adaptively, w = 1 / (||Delta||^2 + c)^p under a stop-gradient
(Sec. 4.3, "Loss metrics"). Sampling (Sec. 4.1, Algorithm 2) is
z_r = z_t - (t - r) u(z_t, r, t); one step is z_0 = z_1 - u(z_1, 0, 1).

Choices: the paper's time direction (noise at t = 1; the py-meanflow code runs the other
way); (r, t) from two independent logit-normal draws sorted so that r <= t, then r = t for a
fraction 1 - ``ratio`` of the pairs (the paper's sampler and the code's "v0").
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import checks
from .constants import MF_P_MEAN, MF_P_STD, MF_RATIO, MF_WEIGHT_C, MF_WEIGHT_P
from .losses import LossOutput, Objective, check_loss_inputs
from .pfode import broadcast_time


def sample_time_pair(B: int, P_mean: float = MF_P_MEAN, P_std: float = MF_P_STD,
                     ratio: float = MF_RATIO, generator=None) -> tuple[Tensor, Tensor]:  # fmt: skip
    """(r, t), each shape (B,), float64, r <= t: two logit-normal draws sigmoid(N(P_mean,
    P_std^2)) sorted, and r set to t for a fraction 1 - ``ratio`` (Geng et al. 2025, Sec. 4.3
    and Table 1a, 1d)."""
    device = generator.device if generator is not None else torch.device("cpu")
    kw = dict(generator=generator, device=device, dtype=torch.float64)
    a = torch.sigmoid(P_mean + P_std * torch.randn(B, **kw))
    b = torch.sigmoid(P_mean + P_std * torch.randn(B, **kw))
    r, t = torch.minimum(a, b), torch.maximum(a, b)
    same = torch.rand(B, **kw) >= ratio  # a fraction 1 - ratio with r = t
    return torch.where(same, t, r), t


def meanflow_target(model, z: Tensor, r: Tensor, t: Tensor, v: Tensor):
    """(u_theta(z, r, t), u_tgt) with u_tgt = v - (t - r)(v d_z u + d_t u), Eq. (10) of Geng
    et al. 2025 (v: the conditional velocity in training, Sec. 4.1), the total derivative
    (Eq. (8)) by ``torch.func.jvp`` with tangents (v, 0, 1).

    u_tgt is detached (the stop-gradient of Eq. (9)); u keeps its graph to theta.
    """
    u, du_dt = torch.func.jvp(
        lambda z_, r_, t_: model(z_, r_, t_),
        (z, r, t),
        (v, torch.zeros_like(r), torch.ones_like(t)),
    )  # $u_\theta$, $\frac{d}{dt} u_\theta = v \partial_z u_\theta + \partial_t u_\theta$
    u_tgt = v - broadcast_time(t - r, z) * du_dt  # $u_{tgt} = v - (t - r) \frac{d}{dt} u$
    return u, u_tgt.detach()


def adaptive_weight(sq: Tensor, p: float = MF_WEIGHT_P, c: float = MF_WEIGHT_C) -> Tensor:
    """w = 1 / (||Delta||^2 + c)^p, detached (Geng et al. 2025, Sec. 4.3, "Loss metrics";
    py-meanflow's ``norm_p``, ``norm_eps``): p = 0 is the squared error, p = 1/2 about the
    pseudo-Huber loss of iCT (Song & Dhariwal 2024)."""
    return 1 / (sq.detach() + c) ** p


class MeanFlowLoss(Objective):
    """The MeanFlow objective, Eqs. (9)-(10) of Geng et al. 2025 (see the module's text).

    Parameters
    ----------
    P_mean, P_std : float
        The logit-normal time sampler (CIFAR-10: -2.0, 2.0).
    ratio : float
        Fraction of pairs with r != t (CIFAR-10: 0.75).
    p, c : float
        The adaptive loss weight 1 / (||Delta||^2 + c)^p (CIFAR-10: p = 0.75, c = 1e-3).
    """

    def __init__(self, P_mean=MF_P_MEAN, P_std=MF_P_STD, ratio=MF_RATIO, p=MF_WEIGHT_P,
                 c=MF_WEIGHT_C):  # fmt: skip
        self.P_mean, self.P_std, self.ratio, self.p, self.c = P_mean, P_std, ratio, p, c

    def N(self, k: int) -> int:
        """0: r and t are continuous (Geng et al. 2025, Sec. 4.3)."""
        return 0

    def __call__(self, model, target, x: Tensor, k: int = 0, generator=None, r=None, t=None,
                 e=None):  # fmt: skip
        """sg(w) ||u_theta - sg(u_tgt)||^2 (Geng et al. 2025, Eqs. (9), (10), Sec. 4.3) for a
        batch x of shape (B, *D). r, t (B,) and the noise e may be given; ``target`` is
        unused (the stop-gradient acts on u_tgt)."""
        check_loss_inputs(model, x, k, z=e)
        if t is None:
            r, t = sample_time_pair(x.shape[0], self.P_mean, self.P_std, self.ratio, generator)
        r, t = (s.to(device=x.device, dtype=x.dtype) for s in (r, t))
        if e is None:
            e = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        tt = broadcast_time(t, x)
        z = (1 - tt) * x + tt * e  # $z_t = (1 - t) x + t \epsilon$
        v = e - x  # $v_t = \epsilon - x$
        with checks.checked():
            u, u_tgt = meanflow_target(model, z, r, t, v)
        sq = (u - u_tgt).flatten(1).pow(2).sum(1)  # $\|u_\theta - \mathrm{sg}(u_{tgt})\|^2$
        per_sample = adaptive_weight(sq, self.p, self.c) * sq
        return LossOutput(per_sample.mean(), per_sample, torch.zeros_like(t).long(), 0)


def meanflow_times(steps: int) -> Tensor:
    """1, (steps - 1)/steps, ..., 1/steps: equal intervals down to 0, the paper's 1- and
    2-NFE sampling (Geng et al. 2025, Sec. 4.1, "Sampling"). float64, shape (steps,)."""
    checks.check_count("steps", steps, 1, "one step is z_0 = z_1 - u(z_1, 0, 1)")
    return torch.arange(steps, 0, -1, dtype=torch.float64) / steps


@torch.no_grad()
def meanflow_sample(model, z1: Tensor, ts, clip=None) -> Tensor:
    """z_r = z_t - (t - r) u(z_t, r, t) from t = ts[0] through ts[1:] to 0, deterministic
    (Geng et al. 2025, Sec. 4.1, "Sampling"); one step, ts = [1], is z_0 = z_1 - u(z_1, 0, 1),
    their Algorithm 2.

    z1 : (B, *D) ~ N(0, I). clip : clamp the result, e.g. (-1, 1).
    """
    ts = checks.check_times("ts", ts, 0.0, 1.0, descending=True).tolist() + [0.0]
    z = z1
    for t, r in zip(ts[:-1], ts[1:]):
        z = z - (t - r) * model(z, r, t)  # $z_r = z_t - (t - r) u(z_t, r, t)$
    return z.clamp(*clip) if clip is not None else z
