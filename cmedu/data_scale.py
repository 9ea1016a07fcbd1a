"""Data of any scale under the paper's constants.

The constants of Song et al. 2023 (App. C: sigma_data = 0.5, eps = 0.002, T = 80) assume
data of standard deviation about sigma_data: pixels in [-1, 1]. For data x of another
scale a run trains on the standardized data

    y = (x - c) / s,   c = E[x],   s = std(x) / sigma_data,

(one scalar s for all coordinates, so shapes are kept), whose standard deviation is
sigma_data. Noise scales with the data: x_t = x + t z maps to y_{t / s} = y + (t / s) z,
so the consistency function of x is

    f_x(x, t) = c + s f_y((x - c) / s, t / s),   t in [s eps, s T],

which ``DataScaled`` computes from the model trained on y. A run stores c and s in its
config; loading it wraps the model, so sampling, editing and evaluation see data units,
and the samplers read the time range [s eps, s T] from the model's ``eps`` and ``T``.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .constants import SIGMA_DATA
from .pfode import time_range
from .toys import GaussianMixture


def fit_scale(data, n: int = 100_000, sigma_data: float = SIGMA_DATA) -> tuple[list, float]:
    """(c, s): the data's mean, and its std over all coordinates divided by the sigma_data
    of App. C (Song et al. 2023).

    Exact for a ``GaussianMixture`` (c = sum_k w_k m_k, E||x - c||^2 = sum_k w_k (d s_k^2 +
    ||m_k - c||^2)); otherwise from n samples (fixed seed).
    """
    if isinstance(data, GaussianMixture):
        w, m = data.weights, data.means
        c = (w[:, None] * m).sum(0)
        var = (w * (data.dim * data.stds**2 + ((m - c) ** 2).sum(1))).sum() / data.dim
    else:
        x = data.sample(n, torch.Generator().manual_seed(0), dtype=torch.float64)
        c, var = x.mean(0), x.var(0).mean()
    return c.tolist(), float(var.sqrt()) / sigma_data


class StandardizedData:
    """The data y = (x - c) / s, whose std is the sigma_data of App. C (Song et al. 2023):
    samples only, or, for a mixture, the exact standardized mixture with means
    (m_k - c) / s, stds s_k / s and the same weights (so CD keeps its exact teacher)."""

    def __new__(cls, data, center, scale):
        if isinstance(data, GaussianMixture):
            c = torch.as_tensor(center, dtype=torch.float64)
            return GaussianMixture((data.means - c) / scale, data.stds / scale, data.weights)
        return super().__new__(cls)

    def __init__(self, data, center, scale):
        self.data, self.dim = data, data.dim
        self.center, self.scale = torch.as_tensor(center, dtype=torch.float64), scale

    def sample(self, n: int, generator=None, *, dtype=torch.float32) -> Tensor:
        """n samples y = (x - c) / s, x ~ p_data (Sec. 2, Song et al. 2023), shape (n, d)."""
        x = self.data.sample(n, generator, dtype=torch.float64)
        return ((x - self.center.to(x.device)) / self.scale).to(dtype)


class DataScaled(nn.Module):
    """f_x(x, t) = c + s f_y((x - c) / s, t / s): the data's consistency function
    (Sec. 3 of Song et al. 2023) from a model f_y trained on standardized data.

    ``eps`` and ``T`` are the time range in data units, s eps and s T. The prior is
    N(0, (s T)^2 I), which differs from the exact N(c, (s T)^2 I + Cov x) by a shift of
    norm(c) / (s T) standard deviations."""

    def __init__(self, model: nn.Module, center, scale: float):
        super().__init__()
        self.model, self.scale = model, float(scale)
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32))

    @property
    def data_shape(self):
        """The shape of one sample, as the wrapped model's (``cmedu.checks``)."""
        return getattr(self.model, "data_shape", None)

    @property
    def eps(self) -> float:
        """s eps: the boundary time of Eq. (5) in data units."""
        return self.scale * time_range(self.model)[0]

    @property
    def T(self) -> float:
        """s T: the horizon of the PF-ODE (Sec. 4, Song et al. 2023) in data units."""
        return self.scale * time_range(self.model)[1]

    def forward(self, x: Tensor, t) -> Tensor:
        c = self.center.to(x.device, x.dtype)
        t = torch.as_tensor(t, dtype=x.dtype, device=x.device) / self.scale
        return c + self.scale * self.model((x - c) / self.scale, t)
