"""Score estimation: the unbiased estimator behind CT, and the pieces of denoising score
matching.

Denoising score matching trains a denoiser D_phi(x, sigma) ~ E[x_0 | x_sigma]; its score is
s_phi = (D_phi - x) / sigma^2 (Tweedie, ``pfode.denoiser_to_score``). With EDM's
preconditioning, noise levels and loss weighting (Karras et al. 2022, Sec. 5; here
``sample_edm_sigma`` and ``edm_weight``) it gives the diffusion teacher for consistency
distillation where no closed-form score exists; the loss itself is
``losses.DenoisingScoreMatching``, beside the consistency losses.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .constants import EDM_P_MEAN, EDM_P_STD, SIGMA_DATA
from .pfode import broadcast_time


def unbiased_score_estimate(x_t: Tensor, x0: Tensor, t) -> Tensor:
    """-(x_t - x_0) / t^2: Lemma 1 of Song et al. 2023.

    grad log p_t(x_t) = -E[(x_t - x_0) / t^2 | x_t] for x_0 ~ p_data, x_t ~ N(x_0, t^2 I);
    a single draw of x_0 gives an unbiased (but noisy) estimate of the score. Put into
    the Euler step of CD it turns x̂_{t_n} into x + t_n z, the CT target (Eq. (10)).
    """
    return -(x_t - x0) / broadcast_time(t, x_t) ** 2


def edm_weight(sigma: Tensor, sigma_data: float = SIGMA_DATA) -> Tensor:
    """lambda(sigma) = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 (EDM Table 1) = 1/c_out^2."""
    return (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2


def sample_edm_sigma(B: int, P_mean: float = EDM_P_MEAN, P_std: float = EDM_P_STD,
                     generator=None) -> Tensor:  # fmt: skip
    """sigma = exp(P_mean + P_std xi), xi ~ N(0, 1), shape (B,): EDM's noise levels for
    denoising score matching (Karras et al. 2022, Table 1)."""
    device = generator.device if generator is not None else torch.device("cpu")
    return torch.exp(P_mean + P_std * torch.randn(B, generator=generator, device=device))
