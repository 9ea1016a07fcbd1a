"""Embeddings of the noise level c_noise(t) that condition the networks F.

Both networks of cmedu (the toy MLP and the U-Net) feed c_noise through one of these:

* ``FourierEmbedding``: random Fourier features with fixed Gaussian frequencies, the
  NCSN++ time embedding of CM (scale 16) and iCT (scale 0.02);
* ``PositionalEmbedding``: the transformer / DDPM sinusoidal embedding.

References
----------
.. [1] Tancik et al. "Fourier Features Let Networks Learn High Frequency Functions in Low
       Dimensional Domains." NeurIPS 2020.
.. [2] Song, Sohl-Dickstein, Kingma, Kumar, Ermon, Poole. "Score-Based Generative
       Modeling through Stochastic Differential Equations." ICLR 2021.
.. [3] Song, Dhariwal. "Improved Techniques for Training Consistency Models." ICLR 2024.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..constants import CM_FOURIER_SCALE


class FourierEmbedding(nn.Module):
    """Random Fourier features of the noise level (Gaussian Fourier projection [1], [2]).

    ``emb = [cos(2 pi f c_noise), sin(2 pi f c_noise)]`` with fixed frequencies
    ``f ~ N(0, scale^2)``. CM uses ``scale = 16``; iCT uses ``0.02`` [3], which makes the
    network less sensitive to small changes of the noise level.

    Parameters
    ----------
    channels : int
        Output width (even); ``channels // 2`` frequencies.
    scale : float
        Standard deviation of the frequencies.
    """

    def __init__(self, channels: int, scale: float = CM_FOURIER_SCALE):
        super().__init__()
        self.scale = scale
        self.register_buffer("freqs", torch.randn(channels // 2) * scale)

    def forward(self, c_noise: Tensor) -> Tensor:
        """c_noise : (B,) -> (B, channels)."""
        phase = torch.outer(c_noise.float(), 2 * math.pi * self.freqs.float())
        return torch.cat([phase.cos(), phase.sin()], dim=1)


class PositionalEmbedding(nn.Module):
    """Transformer / DDPM sinusoidal embedding with geometric frequencies.

    ``emb = [cos(w_k c_noise), sin(w_k c_noise)]`` with
    ``w_k = (1 / max_positions) ** (k / (K - 1))``, k = 0..K-1, K = channels // 2
    (DDPM++ and ADM use this; EDM's ``PositionalEmbedding(endpoint=True)``).
    """

    def __init__(self, channels: int, max_positions: int = 10_000):
        super().__init__()
        k = torch.arange(channels // 2, dtype=torch.float32) / (channels // 2 - 1)
        self.register_buffer("freqs", (1.0 / max_positions) ** k, persistent=False)

    def forward(self, c_noise: Tensor) -> Tensor:
        """c_noise : (B,) -> (B, channels)."""
        phase = torch.outer(c_noise, self.freqs)
        return torch.cat([phase.cos(), phase.sin()], dim=1)
