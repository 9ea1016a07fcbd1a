"""Distance functions d(x, y) for the consistency losses (Song et al. 2023, Sec. 3; iCT Sec. 3.3).

Each maps two batches of shape (B, *D) to per-sample distances of shape (B,), with
d(x, y) >= 0 and equality iff x = y (LPIPS: up to the network's invariances).
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from . import checks
from .constants import ICT_HUBER_C_PER_SQRT_DIM
from .runtime.weights import hub_file, weights_not_found


def _flat(x: Tensor) -> Tensor:
    return x.reshape(x.shape[0], -1)


def _check_pair(x: Tensor, y: Tensor) -> None:
    """Two batches of the same shape (B, *D) (shapes only: these run inside every loss)."""
    checks.check_tensor("x", x)
    checks.check_tensor("y", y)
    if x.ndim == 0:
        raise ValueError("x: expected a batch of shape (B, *D), got a scalar")
    checks.check_same_shape("x", x, "y", y)


def squared_l2(x: Tensor, y: Tensor) -> Tensor:
    """||x - y||_2^2, a distance d of Eq. (7), averaged over elements as the official code
    does (``mean_flat``)."""
    _check_pair(x, y)
    return _flat(x - y).pow(2).mean(1)


def l1(x: Tensor, y: Tensor) -> Tensor:
    """||x - y||_1, a distance d of Eq. (7), averaged over elements (``mean_flat`` in the
    official code)."""
    _check_pair(x, y)
    return _flat(x - y).abs().mean(1)


def huber_c(dim: int) -> float:
    """c = 0.00054 sqrt(d): the pseudo-Huber constant of iCT (Song & Dhariwal 2024, Sec. 3.3)."""
    return ICT_HUBER_C_PER_SQRT_DIM * math.sqrt(dim)


def pseudo_huber(x: Tensor, y: Tensor, c: float | None = None) -> Tensor:
    """d(x, y) = sqrt(||x - y||_2^2 + c^2) - c (iCT, Song & Dhariwal 2024, Sec. 3.3).

    The norm is over the whole sample; c defaults to 0.00054 sqrt(d), d = x[0].numel().
    """
    _check_pair(x, y)
    c = huber_c(x[0].numel()) if c is None else checks.check_number("c", c, 0.0)
    return torch.sqrt(_flat(x - y).pow(2).sum(1) + c**2) - c


# torchvision's ImageNet backbones that the ``lpips`` package loads, cached by torch.hub.
LPIPS_URLS = {
    "vgg": "https://download.pytorch.org/models/vgg16-397923af.pth",
    "alex": "https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    "squeeze": "https://download.pytorch.org/models/squeezenet1_1-b8a52dc0.pth",
}


class LPIPSDistance(nn.Module):
    """LPIPS (Zhang et al. 2018) through the ``lpips`` package, as used by CD/CT (Sec. 6).

    Images in [-1, 1] smaller than 224 pixels are upsampled bilinearly to 224 x 224 first,
    as the paper does for CIFAR-10 and ImageNet 64 (Song et al. 2023, App. C).

    Parameters
    ----------
    net : {"vgg", "alex", "squeeze"}
        Backbone; its ImageNet weights come through torchvision's download and cache. When
        they are missing and cannot be downloaded: ``WeightsNotFoundError``, naming the file,
        the folder searched and the URL.
    random_backbone : bool
        Random backbone weights (``pnet_rand=True``): only for offline plumbing tests;
        distances from it mean nothing.
    """

    def __init__(self, net: str = "vgg", random_backbone: bool = False, resize: int = 224):
        super().__init__()
        import lpips

        try:
            with warnings.catch_warnings():  # torchvision's "pretrained is deprecated"
                warnings.simplefilter("ignore", UserWarning)
                self.lpips = lpips.LPIPS(net=net, pnet_rand=random_backbone, verbose=False)
        except Exception as err:  # the backbone download failed (offline, proxy, ...)
            if random_backbone or hub_file(LPIPS_URLS[net]).is_file():
                raise  # present but unreadable: not a download problem
            cause = err.__cause__ or err
            raise weights_not_found(f"LPIPS ({net} backbone)", LPIPS_URLS[net], cause) from err
        self.resize = resize
        self.requires_grad_(False)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        if x.shape[-1] < self.resize:
            size = (self.resize, self.resize)
            x = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            y = F.interpolate(y, size=size, mode="bilinear", align_corners=False)
        return self.lpips(x, y, normalize=False).reshape(-1)


def l2_norm(x: Tensor, y: Tensor) -> Tensor:
    """d(x, y) = ||x - y||_2 over the whole sample: ECT's default (Geng et al. 2024), the
    pseudo-Huber distance with c = 0, whose gradient weights the squared error adaptively by
    1 / ||x - y||. Its gradient at x = y is taken as 0."""
    _check_pair(x, y)
    return torch.linalg.vector_norm(_flat(x - y), dim=1)


DISTANCES = {"l2": squared_l2, "l1": l1, "pseudo_huber": pseudo_huber, "l2_norm": l2_norm}
LPIPS = "lpips"  # by name through ``get_distance``: its network is built on demand


def get_distance(name: str):
    """The distance d of Eq. (7) / (10) by name: ``l2``, ``l1``, ``pseudo_huber``, ``lpips``."""
    if name == LPIPS:
        return LPIPSDistance()
    if name not in DISTANCES:
        raise ValueError(f"unknown distance {name!r}: choose one of {(*DISTANCES, LPIPS)}")
    return DISTANCES[name]
