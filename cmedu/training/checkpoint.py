"""Atomic checkpoint files: a crash mid-write never leaves a half-written checkpoint."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import torch

CHECKPOINT = "checkpoint.pt"
CONFIG = "config.json"


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(file)`` on a temporary file beside ``path``, fsync it, then rename it
    over ``path`` (os.replace is atomic on POSIX and Windows)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_checkpoint(directory: str | Path, state: dict, config: dict) -> None:
    """Write ``config.json`` and ``checkpoint.pt`` atomically into ``directory``."""
    directory = Path(directory)
    text = json.dumps(config, indent=2, sort_keys=True).encode()
    atomic_write(directory / CONFIG, lambda f: f.write(text))
    atomic_write(directory / CHECKPOINT, lambda f: torch.save(state, f))


def load_checkpoint(directory: str | Path, map_location="cpu") -> tuple[dict, dict]:
    """Read (state, config) from ``directory``; a clear error if there is none."""
    directory = Path(directory)
    path = directory / CHECKPOINT
    if not path.is_file():
        raise FileNotFoundError(
            f"no checkpoint at {path}: train one with `python -m cmedu train --out {directory}`"
        )
    config = saved_config(directory)
    state = torch.load(path, map_location=map_location, weights_only=True)
    return state, config


def saved_config(directory: str | Path) -> dict:
    """The config a run in ``directory`` was written with (its ``config.json``), without
    reading its weights."""
    return json.loads((Path(directory) / CONFIG).read_text())


def stored_shape(state: dict) -> tuple[int, ...]:
    """The data shape saved with a run: (C, H, W) for images, (d,) for toys (older runs
    stored only ``dim``)."""
    return tuple(state["shape"] if "shape" in state else [state["dim"]])


def has_checkpoint(directory: str | Path | None) -> bool:
    return directory is not None and (Path(directory) / CHECKPOINT).is_file()
