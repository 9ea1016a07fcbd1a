"""Trained models on disk: a run directory of ``cmedu train`` (``load_run``), or a shipped
checkpoint (``cmedu.training.pretrained``), read through one loader (``load_trained``)."""

from __future__ import annotations

from pathlib import Path

import torch

from ..data_scale import DataScaled
from ..parameterization import AverageVelocityModel, ConsistencyModel, EDMDenoiser, TrigFlowModel
from ..toys import GaussianMixture
from .build import build_model, data_shape
from .checkpoint import CHECKPOINT, has_checkpoint, load_checkpoint, stored_shape
from .config import TrainConfig
from .pretrained import load_pretrained


def load_run(directory: str | Path, which: str = "ema", device="cpu"):
    """(model in eval mode, its TrainConfig, data shape) of a run directory.

    ``which`` = "ema" (default) or "online"; the shape is (d,) for toys, (C, H, W) for images.
    """
    state, config = load_checkpoint(directory)
    cfg = TrainConfig(**config)
    shape = stored_shape(state)
    model = build_model(cfg, shape)
    model.load_state_dict(state[which])
    return in_data_units(model, cfg).to(device).eval(), cfg, shape


def in_data_units(model: torch.nn.Module, cfg: TrainConfig) -> torch.nn.Module:
    """The model in data units: ``DataScaled`` when the run standardized its data."""
    return DataScaled(model, cfg.data_center, cfg.data_scale) if cfg.standardize else model


def load_trained(spec: str | Path, device="cpu"):
    """(model in eval mode, its TrainConfig, data shape) of a run directory (``load_run``,
    EMA weights) or of a shipped checkpoint's name or path (``cmedu.training.pretrained``)."""
    if has_checkpoint(spec):
        return load_run(spec, device=device)
    try:
        model, info = load_pretrained(spec, device=device, with_info=True)
    except FileNotFoundError as err:
        where = Path(spec) / CHECKPOINT
        raise FileNotFoundError(f"no checkpoint at {where} (a run directory), and {err}") from err
    return model, info["config"], info["shape"]


def load_model(directory: str | Path, which: str = "ema", device="cpu") -> torch.nn.Module:
    """The model of a run directory in eval mode: ``which`` = "ema" (default) or "online"."""
    return load_run(directory, which, device)[0]


def require_consistency_model(model, spec, command: str) -> None:
    """Refuse a DSM (EDM denoiser) run where ``command`` needs a one-step model: a consistency
    model f_theta (CD, CT, iCT, ECT, sCM) or MeanFlow's average velocity u_theta."""
    one_step = (ConsistencyModel, TrigFlowModel, AverageVelocityModel)
    if not isinstance(getattr(model, "model", model), one_step):  # DataScaled wraps
        raise ValueError(
            f"{spec} is a DSM (EDM denoiser) run, not a consistency model; "
            f"`{command}` needs a cd, ct, ict, ect, scm, scd or meanflow run"
        )


def init_from_denoiser(model: torch.nn.Module, spec, shape, device) -> None:
    """Copy the network F of a DSM run (or shipped denoiser) into ``model``'s F: ECT's start
    from a pretrained diffusion model (Geng et al. 2024). The EDM denoiser and the consistency
    model share c_in and c_noise, and their c_skip, c_out differ only by the eps shift
    (App. C), so f_theta starts next to D_phi. The two networks must have the same
    architecture (--hidden/--depth or --net, --fourier-scale)."""
    denoiser, _, saved_shape = load_trained(spec, device=device)
    if not isinstance(denoiser, EDMDenoiser):
        raise ValueError(f"--init-from {spec} is not a DSM (EDM denoiser) run")
    if tuple(saved_shape) != tuple(shape):
        raise ValueError(f"--init-from {spec} was trained on shape {saved_shape}, not {shape}")
    try:
        model.net.load_state_dict(denoiser.net.state_dict())
    except RuntimeError as err:
        raise ValueError(f"--init-from {spec}: its network differs from this run's: {err}") from err


STANDARDIZED_TEACHER = (
    "--standardize trains on standardized data, but a --teacher run denoises data in its "
    "own units; use CD's exact mixture teacher, or CT / iCT"
)

NO_TEACHER = (
    "CD needs a teacher: {data} has no closed-form score. Train one with "
    "`python -m cmedu train --method dsm --out TEACHER_DIR` (same --data) and pass "
    "--teacher TEACHER_DIR"
)


def load_teacher(teacher_dir: str | None, data, device: torch.device):
    """CD's teacher D_phi (Algorithm 2): a trained DSM denoiser from ``teacher_dir`` (a run
    directory, or a shipped checkpoint's name or path), else the exact mixture."""
    if teacher_dir is not None:
        teacher, _, shape = load_trained(teacher_dir, device=device)
        if not isinstance(teacher, EDMDenoiser):
            raise ValueError(f"--teacher {teacher_dir} is not a DSM (EDM denoiser) run")
        if shape != data_shape(data):
            raise ValueError(
                f"--teacher {teacher_dir} was trained on data of shape {shape}, "
                f"but this data has shape {data_shape(data)}"
            )
        return teacher.requires_grad_(False)
    if isinstance(data, GaussianMixture):
        return data
    raise ValueError(NO_TEACHER.format(data=repr(data)))
