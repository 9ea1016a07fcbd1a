"""Shipped checkpoints: small trained models that the course loads when no GPU is at hand.

A shipped checkpoint is a folder under ``checkpoints/`` at the top of the repository:

    checkpoints/<name>/model.pt      EMA weights in float16, the run's config, metadata
    checkpoints/<name>/MODEL_CARD.md data, method, steps, hardware, wall time, quality

``export_pretrained`` writes one from a training run directory (atomically);
``load_pretrained`` returns the model in eval mode, in float32.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import torch

from .build import build_model
from .checkpoint import atomic_write, load_checkpoint, stored_shape
from .config import TrainConfig

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"
MODEL_FILE = "model.pt"
CIFAR10_ICT = "cifar10-ict-tiny"  # iCT, U-Net "tiny", on CIFAR-10 (JPEG copy); see its card
CIFAR10_DSM = "cifar10-dsm-tiny"  # the EDM teacher of CD, U-Net "tiny"
CIFAR10_CD = "cifar10-cd-tiny"  # CD from that teacher, started from its weights
CIFAR10_ECT = "cifar10-ect-tiny"  # ECT: consistency tuning of that teacher's weights
CIFAR10_CLASSIFIER = "cifar10-classifier"  # the yardstick's classifier (cmedu.evaluation)


def available() -> list[str]:
    """Names of the checkpoints shipped under ``checkpoints/``."""
    if not CHECKPOINTS.is_dir():
        return []
    return sorted(p.parent.name for p in CHECKPOINTS.glob(f"*/{MODEL_FILE}"))


def _resolve(name_or_path: str | Path) -> Path:
    path = Path(name_or_path)
    for candidate in (path, path / MODEL_FILE, CHECKPOINTS / str(name_or_path) / MODEL_FILE):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(
        f"no shipped checkpoint {str(name_or_path)!r}: looked for {path}, {path / MODEL_FILE} "
        f"and {CHECKPOINTS / str(name_or_path) / MODEL_FILE}. Shipped: {available() or 'none'}. "
        "Train one with `python -m cmedu train` and load it with cmedu.load_model(run_dir)."
    )


def export_pretrained(run_dir: str | Path, out_dir: str | Path, meta: dict | None = None) -> Path:
    """Write the EMA weights of the run in ``run_dir`` as float16 ``out_dir/model.pt``.

    ``meta`` (JSON-like: steps, images seen, wall time, hardware, ...) is stored beside the
    weights and returned by ``load_pretrained(..., with_info=True)``.
    """
    state, config = load_checkpoint(run_dir)
    half = {k: v.half() if v.is_floating_point() else v for k, v in state["ema"].items()}
    shape = list(stored_shape(state))
    meta = json.loads(json.dumps(meta or {}, default=str))  # plain types: weights_only loads
    payload = {"config": config, "shape": shape, "ema": half, "step": state.get("step"),
               "meta": meta}  # fmt: skip
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    path = Path(out_dir) / MODEL_FILE
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
    return path


def load_pretrained(name_or_path: str | Path = CIFAR10_ICT, device="cpu", with_info=False):
    """The shipped model ``name_or_path`` (a name under ``checkpoints/`` or a path) in eval
    mode, float32, on ``device``. ``with_info=True`` also returns a dict with the run's
    ``config`` (a TrainConfig), ``shape``, ``step`` and ``meta``."""
    payload = torch.load(_resolve(name_or_path), map_location="cpu", weights_only=True)
    cfg = TrainConfig(**payload["config"])
    model = build_model(cfg, tuple(payload["shape"]))
    model.load_state_dict({k: v.float() for k, v in payload["ema"].items()})
    model = model.to(device).eval()
    if not with_info:
        return model
    info = {"config": cfg, "shape": tuple(payload["shape"]), "step": payload["step"],
            "meta": payload["meta"]}  # fmt: skip
    return model, info


EXAMPLES = CHECKPOINTS / "examples" / "cifar10-jpeg-test-64.npz"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")  # fmt: skip


def example_images(n: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """(images, labels): ``n`` <= 64 CIFAR-10 test images (JPEG copy), uint8 (n, 3, 32, 32),
    shipped so that the editing notebook has real references offline; labels index
    ``CIFAR10_CLASSES``. Scale them with ``cmedu.images.to_model_range``."""
    import numpy as np

    if not EXAMPLES.is_file():
        raise FileNotFoundError(f"the example images are missing: expected {EXAMPLES}")
    with np.load(EXAMPLES) as f:
        images, labels = torch.from_numpy(f["images"]), torch.from_numpy(f["labels"])
    if not 0 < n <= len(images):
        raise ValueError(f"n = {n}: there are {len(images)} example images")
    return images[:n], labels[:n]
