"""The training objectives: consistency distillation and consistency training (Song et al.
2023; iCT), and the denoising score matching of the diffusion teacher (EDM).

Every objective is an ``Objective``: called on a batch x ~ p_data at step k, it returns a
``LossOutput``, and it says whether it keeps a target network theta^- (``uses_target``) and
at which EMA rate (``target_mu``). The training loop knows nothing else about it.

The three consistency objectives share one template (Eq. (7) and Eq. (10)):

    L = E[ lambda(t_n) d( f_theta(x_{t_{n+1}}, t_{n+1}), f_{theta^-}(x̂_{t_n}, t_n) ) ],

with x ~ p_data, z ~ N(0, I), x_{t_{n+1}} = x + t_{n+1} z, on a grid t_1 = eps < ... < t_N = T.
The variants differ in one small method each:

==============  ===================  =========================  =================  =========
objective       grid N               x̂_{t_n}                    lambda(t_n)        target mu
==============  ===================  =========================  =================  =========
CD (Alg. 2)     fixed                ODE solver step (teacher)  1                  fixed
CT (Alg. 3)     N(k), App. C         x + t_n z (Lemma 1)        1                  mu(k)
iCT             doubling curriculum  x + t_n z                  1/(t_{n+1} - t_n)  0
==============  ===================  =========================  =================  =========

iCT also draws n from a discretised lognormal instead of uniformly, and uses the
pseudo-Huber distance. ``EasyConsistencyTraining`` (ECT, Geng et al. 2024) leaves the grid:
t is continuous, and the earlier time r = t - Delta t follows a schedule that shrinks
Delta t towards 0 over training (``schedules.ect_r``). The continuous-time sCM
(``cmedu.trigflow``) and MeanFlow (``cmedu.meanflow``) objectives live beside their own
parameterisations. ``DenoisingScoreMatching`` (EDM, Karras et al. 2022) trains the
teacher D_phi of CD where no closed-form score exists. Index convention: the grid is stored
ascending, index i = n - 1, so a pair is (t_n, t_{n+1}) = (ts[i], ts[i + 1]) with i in
0..N-2.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import torch
from torch import Tensor

from . import checks
from .constants import (
    CD_N,
    CT_MU0,
    CT_S0,
    CT_S1,
    ECT_B,
    ECT_K,
    ECT_P_MEAN,
    ECT_P_STD,
    ECT_Q,
    EDM_P_MEAN,
    EDM_P_STD,
    EPS,
    ICT_P_MEAN,
    ICT_P_STD,
    ICT_S0,
    ICT_S1,
    RHO,
    SIGMA_DATA,
    T,
)
from .distances import l2_norm, pseudo_huber, squared_l2
from .parameterization import MIN_NOISE_LEVEL
from .pfode import Denoiser, as_denoiser, broadcast_time, karras_timesteps
from .schedules import (
    ct_mu,
    ct_N,
    ect_r,
    ect_stage,
    ect_weight,
    ict_N,
    ict_weight,
    lognormal_index_probs,
    truncated_lognormal,
)
from .score_estimation import edm_weight, sample_edm_sigma
from .solvers import SOLVERS


@dataclass
class LossOutput:
    """One evaluation of a loss: the batch mean of lambda(t_n) d(., .), Eq. (7) / (10)."""

    loss: Tensor  # scalar: the mean of ``per_sample``
    per_sample: Tensor  # (B,): lambda(t_n) d(., .)
    n: Tensor  # (B,): grid index i = n - 1 of t_n
    N: int  # number of grid points at this step


@lru_cache(maxsize=64)
def _grid(N: int, eps: float, T: float, rho: float) -> Tensor:
    return karras_timesteps(N, eps, T, rho)


def same_dropout(device: torch.device):
    """A context in which randomness is drawn from a copy of the RNG, restored on exit.

    Run the target pass inside it and the online pass after: both see the same dropout
    masks, as in the official code and iCT (Song & Dhariwal 2024).
    """
    if device.type == "cpu":
        return torch.random.fork_rng(devices=[])
    return torch.random.fork_rng(devices=[device], device_type=device.type)


class Objective:
    """What the training loop needs of an objective: ``__call__`` on a batch at step k, the
    grid size ``N(k)``, and whether (``uses_target``) and how fast (``target_mu``) a separate
    target network theta^- follows the online one, Eq. (8)."""

    uses_target = False  # False: theta^- = stopgrad(theta), no separate target network

    def N(self, k: int) -> int:
        """Number of grid points at step k (0: no time grid)."""
        raise NotImplementedError

    def target_mu(self, k: int) -> float:
        """EMA rate of the target network after step k, Eq. (8)."""
        return 0.0

    def modules(self) -> list:
        """Learned parts of the objective itself (e.g. sCM's weight w_phi, Lu & Song 2024,
        Sec. 4.2), optimised beside theta and saved in the checkpoint. None by default."""
        return []

    def __call__(self, model, target, x: Tensor, k: int = 0, generator=None) -> LossOutput:
        """The loss for one batch x ~ p_data at step k: Eq. (7) / (10), or EDM's (Sec. 5)."""
        raise NotImplementedError


class ConsistencyLoss(Objective):
    """The shared template of Eq. (7) / (10). Subclasses override the small methods."""

    uses_target = True

    def __init__(self, distance=squared_l2, eps: float = EPS, T: float = T, rho: float = RHO):
        self.distance, self.eps, self.T, self.rho = distance, eps, T, rho

    def grid(self, k: int) -> Tensor:
        """The ascending Karras grid at step k, shape (N(k),), float64 (Sec. 4)."""
        return _grid(self.N(k), self.eps, self.T, self.rho)

    def sample_index(self, ts: Tensor, B: int, generator) -> Tensor:
        """i = n - 1 ~ U{0..N-2}: n ~ U{1..N-1} as in Algorithms 2 and 3."""
        return torch.randint(0, len(ts) - 1, (B,), generator=generator, device=_dev(generator))

    def target_point(self, x: Tensor, z: Tensor, x_next: Tensor, t: Tensor, t_next: Tensor):
        """x̂_{t_n}, the point the target network sees: Eq. (6) for CD, x + t_n z for CT."""
        raise NotImplementedError

    def weight(self, t: Tensor, t_next: Tensor) -> Tensor:
        """lambda(t_n) = 1 in all experiments of Song et al. 2023."""
        return torch.ones_like(t)

    def __call__(self, model, target, x: Tensor, k: int = 0, generator=None, n=None, z=None):
        """The loss of Eq. (7) / (10) for one batch x ~ p_data, shape (B, *D), at step k.

        ``target`` is f_{theta^-} (pass ``model`` itself when theta^- = stopgrad(theta)).
        ``n`` (grid indices) and ``z`` (noise) may be given to reuse the same randomness.
        """
        check_loss_inputs(model, x, k, n, z)
        ts = self.grid(k)
        n = self.sample_index(ts, x.shape[0], generator) if n is None else n
        n = n.to(x.device)
        t_all = ts.to(device=x.device, dtype=x.dtype)
        t, t_next = t_all[n], t_all[n + 1]  # $t_n$, $t_{n+1}$
        if z is None:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_next = x + broadcast_time(t_next, x) * z  # $x_{t_{n+1}} = x + t_{n+1} z$
        with torch.no_grad(), checks.checked():  # times from the grid: no device sync
            x_hat = self.target_point(x, z, x_next, t, t_next)
            with same_dropout(x.device):
                y_target = _at_least_float32(target(x_hat, t))  # $f_{\theta^-}(\hat x_{t_n}, t_n)$
        with checks.checked():
            y = _at_least_float32(model(x_next, t_next))  # $f_\theta(x_{t_{n+1}}, t_{n+1})$
        per_sample = self.weight(t, t_next).to(y.dtype) * self.distance(y, y_target)
        return LossOutput(per_sample.mean(), per_sample, n, len(ts))


class ConsistencyDistillation(ConsistencyLoss):
    """CD: Eq. (7), Algorithm 2 of Song et al. 2023.

    Parameters
    ----------
    teacher : callable, module, or object with ``.denoise``
        The teacher's denoiser D_phi(x, t), e.g. an ``EDMDenoiser`` or an exact
        ``GaussianMixture``: it defines the teacher PF-ODE.
    N : int
        Number of grid points (18 on CIFAR-10, Table 3).
    solver : {"heun", "euler"}
        The one-step solver Phi of Eq. (6): Heun is the paper's choice, Euler Theorem 2's.
    mu : float
        EMA rate of the target network, Eq. (8) (0 on CIFAR-10, 0.95 elsewhere, Table 3).
    """

    def __init__(self, teacher, N: int = CD_N, solver="heun", mu: float = 0.0, **kw):
        super().__init__(**kw)
        if solver not in SOLVERS:
            raise ValueError(f"unknown solver {solver!r}: choose one of {sorted(SOLVERS)}")
        self.teacher: Denoiser = as_denoiser(teacher)
        self._N, self.solver, self.mu = N, solver, mu
        self.uses_target = mu > 0

    def N(self, k: int) -> int:
        """The fixed grid size N of Algorithm 2 (18 on CIFAR-10, Table 3)."""
        return self._N

    def target_point(self, x, z, x_next, t, t_next):
        """One teacher step from x_{t_{n+1}} to t_n, Eq. (6)."""
        # $\hat x_{t_n} = x_{t_{n+1}} + (t_n - t_{n+1}) \Phi(x_{t_{n+1}}, t_{n+1}; \phi)$, Eq. (6)
        return SOLVERS[self.solver](self.teacher, x_next, t_next, t)

    def target_mu(self, k: int) -> float:
        """The fixed target EMA rate mu of Eq. (8)."""
        return self.mu


class ConsistencyTraining(ConsistencyLoss):
    """CT: Eq. (10), Algorithm 3 of Song et al. 2023, with the schedules N(k), mu(k) of App. C.

    Parameters
    ----------
    K : int
        Total number of training steps (the schedules are stretched over it).
    s0, s1, mu0 : int, int, float
        Schedule constants (CIFAR-10: 2, 150, 0.9).
    mu_variant : {"paper", "code"}
        mu(0) = mu0 as in the paper, or the official repositories' division by N(k) - 1.
    """

    def __init__(self, K: int, s0=CT_S0, s1=CT_S1, mu0=CT_MU0, mu_variant="paper", **kw):
        super().__init__(**kw)
        self.K, self.s0, self.s1, self.mu0, self.mu_variant = K, s0, s1, mu0, mu_variant
        ct_mu(0, K, s0, s1, mu0, mu_variant)  # validates the variant
        # mu0 = 0 makes mu(k) = 0 for every k: theta^- = stopgrad(theta), no separate network
        self.uses_target = type(self).uses_target and mu0 > 0

    def N(self, k: int) -> int:
        """N(k) of App. C (``schedules.ct_N``), held at N(K) after step K."""
        return ct_N(min(k, self.K), self.K, self.s0, self.s1)

    def target_point(self, x, z, x_next, t, t_next):
        """x̂_{t_n} = x + t_n z: the Euler step with the estimate of Lemma 1, Eq. (10)."""
        return x + broadcast_time(t, x) * z  # $\hat x_{t_n} = x + t_n z$, Lemma 1 with the same z

    def target_mu(self, k: int) -> float:
        """mu(k) of App. C (``schedules.ct_mu``), in the paper's or the code's variant."""
        return ct_mu(min(k, self.K), self.K, self.s0, self.s1, self.mu0, self.mu_variant)


class ImprovedConsistencyTraining(ConsistencyTraining):
    """iCT (Song & Dhariwal 2024): CT with theta^- = stopgrad(theta), pseudo-Huber d,
    lambda = 1/(t_{n+1} - t_n), lognormal index sampling and the doubling curriculum.

    Parameters
    ----------
    K : int
        Total number of training steps.
    s0, s1 : int
        Curriculum endpoints (10 and 1280 in the paper; scale s1 down for short runs).
    P_mean, P_std : float
        The lognormal proposal over noise levels (-1.1 and 2.0 in the paper).
    """

    uses_target = False

    def __init__(
        self, K: int, s0=ICT_S0, s1=ICT_S1, P_mean=ICT_P_MEAN, P_std=ICT_P_STD,
        distance=pseudo_huber, **kw,
    ):  # fmt: skip
        super().__init__(K, s0=s0, s1=s1, distance=distance, **kw)
        self.P_mean, self.P_std = P_mean, P_std

    def N(self, k: int) -> int:
        """The doubling curriculum of iCT (Song & Dhariwal 2024), ``schedules.ict_N``."""
        return ict_N(min(k, self.K), self.K, self.s0, self.s1)

    def sample_index(self, ts, B, generator):
        """i = n - 1 drawn with the lognormal probabilities of iCT (Song & Dhariwal 2024)."""
        p = lognormal_index_probs(ts, self.P_mean, self.P_std).to(_dev(generator))
        return torch.multinomial(p, B, replacement=True, generator=generator)

    def weight(self, t, t_next):
        """lambda(t_n) = 1 / (t_{n+1} - t_n) (iCT, Song & Dhariwal 2024)."""
        return ict_weight(t, t_next)

    def target_mu(self, k: int) -> float:
        """0: theta^- = stopgrad(theta), no target EMA (iCT, Song & Dhariwal 2024)."""
        return 0.0


class EasyConsistencyTraining(Objective):
    """ECT, easy consistency tuning (Geng et al. 2024): CT in continuous t with Delta t -> 0.

        L = w(t, r) d( f_theta(x + t z, t), stopgrad f_theta(x + r z, r) ),

    as read in the official code (locuslab/ect ``training/loss.py``, ``ECMLoss.__call__``;
    the paper's own equation numbers were not checked here), with
    ln t ~ N(P_mean, P_std^2), r = t (1 - n(t) / q^(a+1)) at stage a = floor(k / stage_steps)
    (``schedules.ect_r``), the same z and dropout masks for both passes, and
    d = ||.||_2 (pseudo-Huber with c = 0) with w = 1 / (t - r) by default. Started from a
    DSM-trained denoiser (``--init-from``), stage 0 is close to that denoiser's own loss:
    there r = 0 for t <= ln 7 (n(t) >= q), and the target is the data.

    Choices, each switchable: t is drawn inside the model's range (eps, T] (the code draws
    it unbounded); r is raised to eps, where f(x + eps z, eps) = x + eps z by the boundary
    condition (the code, with r = 0, uses x itself); ``weighting`` "dt" is the CIFAR-10
    code's 1/(t - r), "snr" its later 1/t^2 + 1/sigma_d^2.
    """

    def __init__(
        self, stage_steps: int, q=ECT_Q, k=ECT_K, b=ECT_B, P_mean=ECT_P_MEAN, P_std=ECT_P_STD,
        weighting="dt", distance=l2_norm, eps: float = EPS, T: float = T,
    ):  # fmt: skip
        ect_weight(torch.ones(1), torch.zeros(1), weighting)  # validates the weighting
        self.stage_steps, self.q, self.k, self.b = stage_steps, q, k, b
        self.P_mean, self.P_std, self.weighting = P_mean, P_std, weighting
        self.distance, self.eps, self.T = distance, eps, T

    def N(self, k: int) -> int:
        """0: t is continuous (ECT, Geng et al. 2024)."""
        return 0

    def sample_t(self, B: int, generator=None) -> Tensor:
        """ln t ~ N(P_mean, P_std^2) inside (eps, T] (Geng et al. 2024, iCT's proposal)."""
        return truncated_lognormal(B, self.P_mean, self.P_std, self.eps, self.T, generator)

    def r_of(self, t: Tensor, k: int) -> Tensor:
        """r(t) at step k (``schedules.ect_r``, Geng et al. 2024), raised to eps, below t."""
        r = ect_r(t, ect_stage(k, self.stage_steps), self.q, self.k, self.b)
        return torch.minimum(r.clamp_min(self.eps), t)

    def __call__(self, model, target, x: Tensor, k: int = 0, generator=None, t=None, z=None):
        """The ECT loss (Geng et al. 2024) for a batch x of shape (B, *D) at step k.

        ``target`` is stopgrad f_theta (the online model itself); t (B,) and z may be given.
        """
        check_loss_inputs(model, x, k, z=z)
        t = self.sample_t(x.shape[0], generator) if t is None else t
        t = t.to(device=x.device, dtype=x.dtype)
        r = self.r_of(t, k)
        if z is None:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        with torch.no_grad(), checks.checked(), same_dropout(x.device):
            x_r = x + broadcast_time(r, x) * z  # $x_r = x + r z$
            y_target = _at_least_float32(target(x_r, r))  # $\mathrm{sg}\, f_\theta(x_r, r)$
        with checks.checked():
            y = _at_least_float32(model(x + broadcast_time(t, x) * z, t))  # $f_\theta(x_t, t)$
        w = ect_weight(t, r, self.weighting).to(y.dtype)  # $w(t, r)$
        per_sample = w * self.distance(y, y_target)
        return LossOutput(per_sample.mean(), per_sample, torch.zeros_like(t).long(), 0)


def check_loss_inputs(model, x: Tensor, k: int, n=None, z=None) -> None:
    """A batch x the model takes, a step k >= 0, and n (B,) and z (shape of x) if given.

    Shapes and types only: a check of x's values would make the device wait every step
    (a non-finite loss is caught by the trainer).
    """
    checks.check_model_input("x", x, model)
    checks.check_count("k", k, 0)
    if n is not None and (not isinstance(n, Tensor) or tuple(n.shape) != (x.shape[0],)):
        got = f"shape {tuple(n.shape)}" if isinstance(n, Tensor) else repr(n)
        raise ValueError(f"n: expected grid indices of shape ({x.shape[0]},), got {got}")
    if z is not None:
        checks.check_same_shape("x", x, "z", z)


class DenoisingScoreMatching(Objective):
    """EDM's denoiser loss E[lambda(sigma) ||D(x + sigma n; sigma) - x||^2] (Karras et al. 2022).

    ln sigma ~ N(P_mean, P_std^2) with P_mean = -1.2, P_std = 1.2; the model is an
    ``EDMDenoiser``. The squared error is averaged over elements (``mean_flat``).
    """

    def __init__(self, P_mean: float = EDM_P_MEAN, P_std: float = EDM_P_STD, sigma_data=SIGMA_DATA):
        self.P_mean, self.P_std, self.sigma_data = P_mean, P_std, sigma_data

    def N(self, k: int) -> int:
        """0: no time grid, sigma is continuous."""
        return 0

    def sample_sigma(self, B: int, generator=None) -> Tensor:
        """sigma = exp(P_mean + P_std xi), xi ~ N(0, 1), shape (B,) (EDM Table 1)."""
        return sample_edm_sigma(B, self.P_mean, self.P_std, generator)

    def __call__(self, model, target, x: Tensor, k: int = 0, generator=None, sigma=None, z=None):
        """lambda(sigma) ||D(x + sigma n; sigma) - x||^2 for a batch x of shape (B, *D).

        The denoising loss of Karras et al. 2022, Sec. 5, with the weight lambda of EDM
        Table 1; ``target`` is unused (the same signature as the consistency losses).
        """
        check_loss_inputs(model, x, k, z=z)
        if sigma is not None:
            checks.check_times("sigma", sigma, MIN_NOISE_LEVEL, math.inf, interval="(0, inf)")
        sigma = self.sample_sigma(x.shape[0], generator) if sigma is None else sigma
        sigma = sigma.to(device=x.device, dtype=x.dtype)
        if z is None:
            z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        with checks.checked():  # sigma drawn here or checked above
            D = _at_least_float32(
                model(x + broadcast_time(sigma, x) * z, sigma)
            )  # $D_\phi(x + \sigma n; \sigma)$
        per_sample = edm_weight(sigma, self.sigma_data).to(D.dtype) * squared_l2(D, x.to(D.dtype))
        return LossOutput(per_sample.mean(), per_sample, torch.zeros_like(sigma).long(), 0)


def _at_least_float32(y: Tensor) -> Tensor:
    """Upcast bf16/fp16 (autocast) outputs to float32; keep float32 and float64 as they are."""
    return y.to(torch.promote_types(y.dtype, torch.float32))


def _dev(generator) -> torch.device:
    return generator.device if generator is not None else torch.device("cpu")
