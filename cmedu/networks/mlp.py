"""A small time-conditioned MLP, the network F for the 2D toys."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from ..constants import CM_FOURIER_SCALE
from .embedding import FourierEmbedding


class ToyMLP(nn.Module):
    """F(x_in, c_noise): an MLP on concat(x_in, embedding(c_noise)) with SiLU activations.

    The network F of Eq. (5) for the 2D toys; ``ConsistencyModel`` or ``EDMDenoiser`` wrap
    it with the scalings of App. C.

    Parameters
    ----------
    dim : int
        Data dimension d.
    hidden : int
        Width of each hidden layer.
    depth : int
        Number of hidden layers.
    emb_channels : int
        Size of the Fourier embedding of c_noise.
    fourier_scale : float
        Standard deviation of the embedding frequencies (CM: 16; iCT: 0.02).
    dropout : float
        Dropout probability after each hidden layer.
    time_inputs : int
        Number of time inputs: 1 (c_noise of shape (B,)), or 2 for MeanFlow's u(z, r, t),
        conditioned on (t, t - r) (Geng et al. 2025, Sec. 4): c_noise of shape (B, 2), each
        column with its own embedding, the embeddings summed.
    """

    def __init__(
        self,
        dim: int = 2,
        hidden: int = 128,
        depth: int = 3,
        emb_channels: int = 32,
        fourier_scale: float = CM_FOURIER_SCALE,
        dropout: float = 0.0,
        time_inputs: int = 1,
    ):
        super().__init__()
        self.config = dict(
            dim=dim, hidden=hidden, depth=depth, emb_channels=emb_channels,
            fourier_scale=fourier_scale, dropout=dropout, time_inputs=time_inputs,
        )  # fmt: skip
        self.embed = FourierEmbedding(emb_channels, fourier_scale)
        self.extra_embeds = nn.ModuleList(
            [FourierEmbedding(emb_channels, fourier_scale) for _ in range(time_inputs - 1)]
        )
        layers, width = [], dim + emb_channels
        for _ in range(depth):
            layers += [nn.Linear(width, hidden), nn.SiLU(), nn.Dropout(dropout)]
            width = hidden
        self.body = nn.Sequential(*layers, nn.Linear(width, dim))

    def forward(self, x: Tensor, c_noise: Tensor) -> Tensor:
        c = c_noise.reshape(len(c_noise), -1) if c_noise.ndim else c_noise.reshape(1, 1)
        emb = self.embed(c[:, 0])
        for i, embed in enumerate(self.extra_embeds, 1):
            emb = emb + embed(c[:, i])
        h = torch.cat([x, emb.expand(x.shape[0], -1).to(x.dtype)], dim=1)
        return self.body(h)
