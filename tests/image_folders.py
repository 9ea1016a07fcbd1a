"""Small image folders for the tests: ``<root>/<class>/<i>.png`` of random RGB pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def write_image_folder(root, classes=("a", "b"), per_class: int = 4, side: int = 8) -> Path:
    """``per_class`` random ``side`` x ``side`` RGB images for each class under ``root``
    (seed 0, so every call writes the same images); returns ``root``."""
    root, rng = Path(root), np.random.default_rng(0)
    for cls in classes:
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            pixels = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / cls / f"{i}.png")
    return root
