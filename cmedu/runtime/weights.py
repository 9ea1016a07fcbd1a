"""Pretrained weights that torch.hub downloads on first use (the LPIPS backbones, the FID
Inception): where they are cached, and the one error that says which file is missing."""

from __future__ import annotations

from pathlib import Path

import torch


class WeightsNotFoundError(FileNotFoundError):
    """Weights (the FID/IS Inception, an LPIPS backbone) are not cached and could not be
    downloaded (offline, proxy, ...)."""


def hub_file(url: str) -> Path:
    """Where torch.hub keeps the file downloaded from ``url``: ``<hub dir>/checkpoints/``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def weights_not_found(what: str, url: str, err: BaseException) -> WeightsNotFoundError:
    """The error for ``what`` whose weights from ``url`` failed to load with ``err``: it
    names the file, the folder searched, the URL and the cause."""
    file = hub_file(url)
    return WeightsNotFoundError(
        f"{what} needs the weights file {file.name}, looked for in {file.parent} and "
        f"downloaded from {url} on first use; the download failed ({type(err).__name__}: "
        f"{err}). Run once with network access, or download {url} elsewhere and copy it "
        f"to {file}. No other weights are substituted: their numbers would not be comparable."
    )
