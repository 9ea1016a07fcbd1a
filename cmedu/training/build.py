"""The parts of a run, built from its ``TrainConfig``: the data, the network F in its
parameterization, the optimiser and the objective."""

from __future__ import annotations

import inspect

import torch
from torch import nn

from ..data.images import ImageData, load_images
from ..distances import get_distance
from ..losses import (
    ConsistencyDistillation,
    ConsistencyTraining,
    DenoisingScoreMatching,
    EasyConsistencyTraining,
    ImprovedConsistencyTraining,
)
from ..meanflow import MeanFlowLoss
from ..networks.mlp import ToyMLP
from ..networks.unet import unet_preset
from ..parameterization import (
    AverageVelocityModel,
    ConsistencyModel,
    EDMDenoiser,
    TrigFlowModel,
)
from ..runtime import distributed
from ..toys import toy_data
from ..trigflow import ContinuousConsistencyLoss
from .config import TrainConfig, data_kind

OPTIMIZER_CLASSES = {"radam": torch.optim.RAdam, "adam": torch.optim.Adam}


def load_data(cfg: TrainConfig, device: torch.device):
    """The dataset: a toy, or an ``ImageData`` moved whole onto ``device``."""
    if data_kind(cfg.data) == "toy":
        return toy_data(cfg.data)
    with distributed.main_first():  # rank 0 downloads, the others then read its copy
        data = load_images(cfg.data, root=cfg.data_root, resolution=cfg.resolution)
    return data.to(device)  # batches are then indexed on the device (no DataLoader)


def data_shape(data) -> tuple[int, ...]:
    """(d,) for a toy, (C, H, W) for images."""
    return tuple(data.shape) if isinstance(data, ImageData) else (data.dim,)


def build_net(cfg: TrainConfig, shape: tuple[int, ...]) -> nn.Module:
    """F: the toy MLP for shape (d,), the U-Net preset ``cfg.net`` for (C, H, W); with two
    time inputs (t, t - r) for MeanFlow."""
    extra = {"time_inputs": 2} if cfg.method == "meanflow" else {}
    if len(shape) == 1:
        return ToyMLP(
            shape[0], cfg.hidden, cfg.depth, fourier_scale=cfg.fourier_scale, dropout=cfg.dropout,
            **extra,
        )  # fmt: skip
    c, h, _ = shape
    return unet_preset(
        cfg.net, img_resolution=h, in_channels=c, out_channels=c, dropout=cfg.dropout,
        fourier_scale=cfg.fourier_scale, **extra, **(cfg.net_overrides or {}),
    )  # fmt: skip


def build_model(cfg: TrainConfig, shape: int | tuple[int, ...]) -> nn.Module:
    """F wrapped in its parameterisation: ``EDMDenoiser`` for DSM, ``TrigFlowModel`` for sCM,
    ``AverageVelocityModel`` for MeanFlow, else ``ConsistencyModel`` (Eq. (5), App. C of
    Song et al. 2023)."""
    net = build_net(cfg, (shape,) if isinstance(shape, int) else tuple(shape))
    wrapper = {"dsm": EDMDenoiser, "scm": TrigFlowModel, "scd": TrigFlowModel,
               "meanflow": AverageVelocityModel}.get(cfg.method, ConsistencyModel)  # fmt: skip
    return wrapper(net)


def build_optimizer(cfg: TrainConfig, params, device: torch.device) -> torch.optim.Optimizer:
    """RAdam (CM, iCT) or Adam (EDM), no weight decay. On CUDA the fused kernel where torch
    has one for that optimiser, else the foreach one; elsewhere torch's default."""
    cls = OPTIMIZER_CLASSES[cfg.optimizer]
    kw = {}
    if device.type == "cuda":
        kw = {"fused": True} if "fused" in inspect.signature(cls).parameters else {"foreach": True}
    return cls(params, lr=cfg.lr, **kw)


def build_objective(cfg: TrainConfig, device: torch.device, teacher=None):
    """The loss object of ``cfg.method``; ``teacher`` is CD's and sCD's D_phi
    (``runs.load_teacher``). Learned parts of the objective go to ``device``."""
    if cfg.method in ("dsm", "scm", "scd", "meanflow"):
        objective = _flow_objective(cfg, teacher)
        for module in objective.modules():
            module.to(device)
        return objective
    distance = get_distance(cfg.distance)
    if isinstance(distance, nn.Module):  # LPIPS: its network goes where the batches are
        distance = distance.to(device)
    if cfg.method == "ect":
        return EasyConsistencyTraining(
            cfg.stage_steps, cfg.q, cfg.ect_k, cfg.ect_b, cfg.P_mean, cfg.P_std, cfg.weighting,
            distance=distance,
        )  # fmt: skip
    if cfg.method == "cd":
        return ConsistencyDistillation(teacher, cfg.N, cfg.solver, cfg.mu, distance=distance)
    if cfg.method == "ct":
        return ConsistencyTraining(
            cfg.steps, cfg.s0, cfg.s1, cfg.mu0, cfg.mu_variant, distance=distance
        )
    return ImprovedConsistencyTraining(
        cfg.steps, cfg.s0, cfg.s1, cfg.P_mean, cfg.P_std, distance=distance
    )


def _flow_objective(cfg: TrainConfig, teacher):
    """The objectives that bring their own squared error: DSM, sCM, MeanFlow."""
    if cfg.method == "dsm":
        return DenoisingScoreMatching()
    if cfg.method == "meanflow":
        return MeanFlowLoss(cfg.P_mean, cfg.P_std, cfg.ratio, cfg.weight_p, cfg.weight_c)
    return ContinuousConsistencyLoss(
        teacher if cfg.method == "scd" else None, cfg.P_mean, cfg.P_std, cfg.tangent_c,
        cfg.warmup_steps, cfg.adaptive_weight, cfg.prior_weight,
    )  # fmt: skip
