"""Score estimation: denoising score matching and the unbiased estimator behind CT.

Denoising score matching trains a denoiser D_phi(x, sigma) ~ E[x_0 | x_sigma]; its score is
s_phi = (D_phi - x) / sigma^2 (Tweedie). With EDM's preconditioning and loss weighting
(Karras et al. 2022, Sec. 5) it gives the diffusion teacher for consistency distillation
where no closed-form score exists.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import checks
from .constants import EDM_P_MEAN, EDM_P_STD, SIGMA_DATA
from .distances import squared_l2
from .losses import LossOutput, _at_least_float32, _dev, check_loss_inputs
from .pfode import broadcast_time


def unbiased_score_estimate(x_t: Tensor, x0: Tensor, t) -> Tensor:
    """-(x_t - x_0) / t^2: Lemma 1 of Song et al. 2023.

    grad log p_t(x_t) = -E[(x_t - x_0) / t^2 | x_t] for x_0 ~ p_data, x_t ~ N(x_0, t^2 I);
    a single draw of x_0 gives an unbiased (but noisy) estimate of the score. Put into
    the Euler step of CD it turns x̂_{t_n} into x + t_n z, the CT target (Eq. (10)).
    """
    return -(x_t - x0) / broadcast_time(t, x_t) ** 2


def denoiser_to_score(denoiser):
    """s(x, t) = (D(x, t) - x) / t^2, Tweedie's formula read backwards.

    The inverse of ``pfode.score_to_denoiser``; the same identity, averaged over one data
    point, is Lemma 1 of Song et al. 2023.
    """

    def score(x: Tensor, t) -> Tensor:
        return (denoiser(x, t) - x) / broadcast_time(t, x) ** 2

    return score


def edm_weight(sigma: Tensor, sigma_data: float = SIGMA_DATA) -> Tensor:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (EDM Table 1) = 1/c_out^2."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


class DenoisingScoreMatching:
    """EDM's denoiser loss E[lambda(sigma) ||D(x + sigma n; sigma) - x||^2] (Karras et al. 2022).

    ln sigma ~ N(P_mean, P_std^2) with P_mean = -1.2, P_std = 1.2; the model is an
    ``EDMDenoiser``. The squared error is averaged over elements (``mean_flat``).
    """

    uses_target = False

    def __init__(self, P_mean: float = EDM_P_MEAN, P_std: float = EDM_P_STD, sigma_data=SIGMA_DATA):
        self.P_mean, self.P_std, self.sigma_data = P_mean, P_std, sigma_data

    def target_mu(self, k: int) -> float:
        return 0.0

    def N(self, k: int) -> int:
        return 0  # no time grid: sigma is continuous

    def sample_sigma(self, B: int, generator=None) -> Tensor:
        """sigma = exp(P_mean + P_std xi), xi ~ N(0, 1), shape (B,) (EDM Table 1)."""
        xi = torch.randn(B, generator=generator, device=_dev(generator))
        return torch.exp(self.P_mean + self.P_std * xi)

    def __call__(self, model, target, x: Tensor, k: int = 0, generator=None, sigma=None, z=None):
        """lambda(sigma) ||D(x + sigma n; sigma) - x||^2 for a batch x of shape (B, *D).

        The denoising loss of Karras et al. 2022, Sec. 5, with the weight lambda of EDM
        Table 1; ``target`` is unused (the same signature as the consistency losses).
        """
        check_loss_inputs(model, x, k, z=z)
        if sigma is not None:
            checks.check_times("sigma", sigma, 1e-30, math.inf, interval="(0, inf)")
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
