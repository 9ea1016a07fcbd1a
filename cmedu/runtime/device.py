"""Device selection and mixed precision: one place, so nothing else assumes CPU or CUDA."""

from __future__ import annotations

import contextlib

import torch


def default_device(name: str | None = None) -> torch.device:
    """The given device, else CUDA if available, else Apple MPS, else CPU."""
    if name not in (None, "auto"):
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {name!r} requested but CUDA is not available here")
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def autocast(device: torch.device, enabled: bool = True):
    """bfloat16 autocast on CUDA; a no-op elsewhere (CPU training of toys stays float32)."""
    if enabled and device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def make_generator(seed: int, device: torch.device) -> torch.Generator:
    """A torch.Generator on ``device`` seeded with ``seed`` (MPS shares the CPU generator)."""
    gen_device = "cpu" if device.type == "mps" else device
    return torch.Generator(device=gen_device).manual_seed(seed)
