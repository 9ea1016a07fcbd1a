"""Image data: whole datasets as one uint8 tensor, batches drawn straight from it.

CM [1] and iCT [2] train on CIFAR-10 at 32x32 with pixels scaled to [-1, 1] (reference
sheet, section 1) and random horizontal flips. A CIFAR-10 training set is 150 MB as uint8,
so it is kept whole in (GPU) memory and batches are indexed from it with a seeded
``torch.Generator``: no DataLoader, no worker processes, reproducible draws.

Sources:

* ``cifar10(root)``: the official dataset through torchvision's downloader (checksums
  verified by torchvision).
* ``image_folder(path)``: any folder or .zip laid out as ``[<split>/]<class>/<image>``, e.g.
  the offline copy ``cifar10-jpeg.zip`` (CIFAR-10 re-encoded as JPEG; figures measured on
  it are labelled "CIFAR-10 (JPEG copy)", never as official CIFAR-10 numbers).
* ``load_images(spec)``: either of the above from a string.

References
----------
.. [1] Song, Dhariwal, Chen, Sutskever. "Consistency Models." ICML 2023.
.. [2] Song, Dhariwal. "Improved Techniques for Training Consistency Models." ICLR 2024.
.. [3] Krizhevsky. "Learning Multiple Layers of Features from Tiny Images." 2009.
"""

from __future__ import annotations

import io
import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"
CIFAR10_NAMES = ("cifar10", "cifar-10")  # the load_images names of the official dataset
CIFAR10_FOLDER = "cifar-10-batches-py"  # what torchvision extracts under root
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp")
SPLITS = ("train", "test")
# Display names of known image folders (see /work/shared/data/README.md for the JPEG copy).
KNOWN_NAMES = {"cifar10-jpeg": "CIFAR-10 (JPEG copy)"}
FOLDER_LAYOUT = "<class>/<image>.png|jpg|jpeg|bmp|webp, optionally under train/ or test/"


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not where it was looked for and could not be obtained."""


# ----------------------------------------------------------------------------------------
# Pixel ranges


def to_model_range(images: Tensor) -> Tensor:
    """uint8 pixels {0..255} -> float32 in [-1, 1] (x / 127.5 - 1).

    images : Tensor, uint8, any shape -> Tensor, float32, same shape.
    """
    return images.to(torch.float32) / 127.5 - 1.0


def to_uint8(images: Tensor) -> Tensor:
    """float in [-1, 1] -> uint8 {0..255}: clamp, scale by 127.5, round to nearest.

    Inverts ``to_model_range`` exactly on its image.
    """
    return ((images.detach().float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


# ----------------------------------------------------------------------------------------
# The dataset object


class ImageData:
    """A labelled image dataset held as one uint8 tensor.

    Parameters
    ----------
    images : Tensor, uint8, shape (N, C, H, W)
    labels : Tensor, int64, shape (N,)
        Class index of each image, into ``class_names``.
    class_names : list of str
    name : str
        Display name for figures and tables, e.g. "CIFAR-10" or "CIFAR-10 (JPEG copy)".
    hflip : bool
        Whether ``sample`` mirrors each image left-right with probability 1/2.
    source : str, optional
        The ``load_images`` spec that loads this dataset ("cifar10", a path,
        "synthetic-shapes"), for a ``TrainConfig.data``.
    """

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        class_names: list[str],
        name: str = "images",
        hflip: bool = True,
        source: str | None = None,
    ):
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(
                f"images must be uint8 (N, C, H, W), got {images.dtype} {images.shape}"
            )
        if labels.shape != (images.shape[0],):
            raise ValueError(f"labels must have shape ({images.shape[0]},), got {labels.shape}")
        self.images = images
        self.labels = labels.to(torch.int64)
        self.class_names = list(class_names)
        self.name = name
        self.hflip = hflip
        self.source = source

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one image."""
        return tuple(self.images.shape[1:])

    @property
    def device(self) -> torch.device:
        return self.images.device

    def to(self, device: torch.device | str) -> ImageData:
        """Move images and labels to ``device`` (in place; returns self for chaining)."""
        self.images = self.images.to(device)
        self.labels = self.labels.to(device)
        return self

    def sample(self, n: int, generator: torch.Generator | None = None) -> Tensor:
        """Draw a training batch: uniform with replacement, random horizontal flips.

        Parameters
        ----------
        n : int
            Batch size.
        generator : torch.Generator, optional
            Source of randomness for the indices and the flips. It must live on the same
            device as the images (``torch.Generator(device=data.device)``); None uses the
            global RNG of that device.

        Returns
        -------
        Tensor, float32, shape (n, C, H, W), values in [-1, 1], on ``self.device``.
        """
        device = self.images.device
        idx = torch.randint(len(self), (n,), generator=generator, device=device)
        x = self.images[idx]
        if self.hflip:
            flip = torch.rand(n, generator=generator, device=device) < 0.5
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return to_model_range(x)

    def __repr__(self) -> str:
        return (
            f"ImageData({self.name!r}, {len(self)} images of shape {self.shape}, "
            f"{len(self.class_names)} classes, device={self.device}, hflip={self.hflip})"
        )


# ----------------------------------------------------------------------------------------
# CIFAR-10 through torchvision


def cifar10(root: str | os.PathLike, train: bool = True, download: bool = True) -> ImageData:
    """Official CIFAR-10 [3] through ``torchvision.datasets.CIFAR10`` (md5-checked).

    Parameters
    ----------
    root : path
        Folder that holds (or will hold) ``cifar-10-batches-py``.
    train : bool
        Training split (50,000 images) or test split (10,000).
    download : bool
        Download the archive when it is not already under ``root``.

    Returns
    -------
    ImageData with images (N, 3, 32, 32) uint8 and the 10 class names.

    Raises
    ------
    DatasetNotFoundError
        When the data is not under ``root`` and could not be downloaded; the message names
        the path, gives the original error and says how to obtain the data.
    """
    from torchvision.datasets import CIFAR10

    try:
        ds = CIFAR10(root, train=train, download=download)
    except Exception as err:  # network, checksum or missing files: report all the same way
        raise DatasetNotFoundError(_cifar10_missing_message(root, download, err)) from err
    images = torch.from_numpy(ds.data).permute(0, 3, 1, 2).contiguous()  # NHWC -> NCHW
    labels = torch.as_tensor(ds.targets, dtype=torch.int64)
    return ImageData(images, labels, list(ds.classes), name="CIFAR-10", source="cifar10")


def _cifar10_missing_message(root: str | os.PathLike, download: bool, err: Exception) -> str:
    """What was looked for, why it failed and how to get the data."""
    folder = Path(root).expanduser() / CIFAR10_FOLDER
    why = (
        f"the download failed: {type(err).__name__}: {err}"
        if download
        else f"download=False, so no download was tried ({type(err).__name__}: {err})"
    )
    return (
        f"CIFAR-10 not found at {folder} and {why}.\n"
        "To get it, either\n"
        "  * run again with network access and download=True, or\n"
        f"  * download cifar-10-python.tar.gz from {CIFAR10_URL} and extract it into "
        f"{Path(root).expanduser()} (giving {folder}/data_batch_1 ...), or\n"
        "  * use an image folder or .zip instead: cmedu.images.image_folder(path, split='train') "
        f"or load_images(path), with layout {FOLDER_LAYOUT}."
    )


# ----------------------------------------------------------------------------------------
# Image folders and zips


def image_folder(
    path: str | os.PathLike,
    split: str | None = None,
    resolution: int | None = None,
) -> ImageData:
    """Load a folder or .zip of images laid out as ``[<split>/]<class>/<image>``.

    Parameters
    ----------
    path : path
        A directory or a .zip file.
    split : str, optional
        Sub-folder to read (e.g. "train" for ``train/<class>/<image>``); None reads
        ``<class>/<image>`` at the top.
    resolution : int, optional
        If given, centre-crop each image to a square and resize it to this side (Lanczos).
        Otherwise every image must already have the same size.

    Returns
    -------
    ImageData with RGB images (N, 3, H, W) uint8, labels indexing the sorted class names.

    Raises
    ------
    DatasetNotFoundError
        If ``path`` does not exist.
    ValueError
        If there are no images in the expected layout, or sizes differ.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DatasetNotFoundError(f"image folder or zip not found: {path}")
    files = _list_images(path, split)
    class_names = sorted({cls for cls, _ in files})
    if not files:
        where = path / split if split else path
        hint = " (it has train/ or test/ folders: pass split=...)" if _has_splits(path) else ""
        raise ValueError(f"no images found in {where}{hint}; expected the layout {FOLDER_LAYOUT}")
    blobs = _read_bytes(path, [name for _, name in files])
    images = _decode_all(blobs, [name for _, name in files], resolution)
    labels = torch.as_tensor([class_names.index(cls) for cls, _ in files], dtype=torch.int64)
    return ImageData(images, labels, class_names, name=_display_name(path), source=str(path))


def _list_images(path: Path, split: str | None) -> list[tuple[str, str]]:
    """Sorted (class, member name) pairs of ``[split/]<class>/<image>`` entries."""
    names = _zip_names(path) if zipfile.is_zipfile(path) else _folder_names(path)
    prefix = () if split is None else (split,)
    files = []
    for name in names:
        parts = tuple(name.split("/"))
        if not name.lower().endswith(IMAGE_EXTENSIONS) or any(p.startswith(".") for p in parts):
            continue
        if parts[: len(prefix)] == prefix and len(parts) == len(prefix) + 2:
            files.append((parts[len(prefix)], name))
    return sorted(files)


def _zip_names(path: Path) -> list[str]:
    """Member names of a zip, minus macOS resource forks."""
    with zipfile.ZipFile(path) as z:
        return [n for n in z.namelist() if not n.startswith("__MACOSX/")]


def _folder_names(path: Path) -> list[str]:
    """Relative POSIX paths of all files under a directory."""
    return [p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file()]


def _read_bytes(path: Path, names: list[str]) -> list[bytes]:
    """Raw file contents, read sequentially (zip members or files)."""
    if path.is_dir():
        return [(path / n).read_bytes() for n in names]
    with zipfile.ZipFile(path) as z:
        return [z.read(n) for n in names]


def _decode_all(blobs: list[bytes], names: list[str], resolution: int | None) -> Tensor:
    """Decode all images (plainly: for 32x32 JPEGs a thread pool does not beat one core).

    Returns uint8 (N, 3, H, W); raises ValueError naming a file whose size differs.
    """
    arrays = [_decode(blob, resolution) for blob in blobs]
    _check_same_size(arrays, names)
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _decode(blob: bytes, resolution: int | None) -> np.ndarray:
    """One image file -> RGB uint8 array (H, W, 3), optionally centre-cropped and resized."""
    with Image.open(io.BytesIO(blob)) as im:
        im = im.convert("RGB")
        if resolution is not None:
            im = _center_crop_resize(im, resolution)
        return np.asarray(im)


def _center_crop_resize(im: Image.Image, resolution: int) -> Image.Image:
    """Crop the largest centred square, then resize it to resolution x resolution."""
    w, h = im.size
    s = min(w, h)
    box = ((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s)
    return im.crop(box).resize((resolution, resolution), Image.Resampling.LANCZOS)


def _check_same_size(arrays: list[np.ndarray], names: list[str]) -> None:
    """All images must share the first one's (H, W); name the first offender."""
    for a, name in zip(arrays, names):
        if a.shape != arrays[0].shape:
            raise ValueError(
                f"images differ in size: {name} is {a.shape[1]}x{a.shape[0]} but {names[0]} "
                f"is {arrays[0].shape[1]}x{arrays[0].shape[0]} (W x H); pass resolution=... "
                "to centre-crop and resize them all"
            )


def _display_name(path: Path) -> str:
    """'CIFAR-10 (JPEG copy)' for cifar10-jpeg[.zip], else the folder or zip name."""
    stem = path.stem if path.is_file() else path.name
    return KNOWN_NAMES.get(stem, stem)


# ----------------------------------------------------------------------------------------
# Synthetic images: for tests and the notebooks' fast mode, no download needed

SHAPE_CLASSES = ("disc", "square")
SYNTHETIC = "synthetic-shapes"  # its load_images name
SYNTHETIC_N = 10_000  # images in load_images(SYNTHETIC)


def synthetic_shapes(n: int, resolution: int = 16, seed: int = 0) -> ImageData:
    """``n`` images of one coloured disc or square on a vertical two-colour gradient.

    A dataset with structure (edges, flat regions, two classes, colour) that a small network
    learns in minutes, for the notebooks' fast mode and for tests; its name says what it is.

    Returns
    -------
    ImageData with images (n, 3, resolution, resolution) uint8 and labels 0 (disc) or 1
    (square), reproducible from ``seed``.
    """
    if n < 1 or resolution < 4:
        raise ValueError(f"need n >= 1 and resolution >= 4, got n={n}, resolution={resolution}")
    g = torch.Generator().manual_seed(seed)
    u = (torch.arange(resolution) + 0.5) / resolution  # pixel centres in (0, 1)
    yy, xx = u[:, None], u[None, :]
    top, bottom, colour = (torch.rand(n, 3, 1, 1, generator=g) for _ in range(3))
    image = top + (bottom - top) * yy  # background gradient, shape (n, 3, res, 1) -> broadcast
    centre = 0.3 + 0.4 * torch.rand(n, 2, 1, 1, generator=g)
    radius = 0.15 + 0.15 * torch.rand(n, 1, 1, generator=g)
    labels = torch.randint(2, (n,), generator=g)
    dy, dx = yy - centre[:, 0], xx - centre[:, 1]  # (n, res, res)
    disc = dy**2 + dx**2 <= radius**2
    square = (dy.abs() <= radius) & (dx.abs() <= radius)
    inside = torch.where(labels[:, None, None] == 0, disc, square)[:, None]
    image = torch.where(inside, colour.expand_as(image), image.expand(n, 3, resolution, resolution))
    pixels = (image * 255).round().clamp(0, 255).to(torch.uint8)
    name = f"synthetic shapes {resolution}px"
    return ImageData(pixels, labels, list(SHAPE_CLASSES), name=name, source=SYNTHETIC)


# ----------------------------------------------------------------------------------------
# One entry point, and writing images


def default_data_root() -> Path:
    """Where ``load_images("cifar10")`` keeps the download: $CMEDU_DATA or ~/.cache/cmedu."""
    return Path(os.environ.get("CMEDU_DATA", "~/.cache/cmedu")).expanduser()


def load_images(
    spec: str | os.PathLike,
    root: str | os.PathLike | None = None,
    train: bool = True,
    download: bool = True,
    resolution: int | None = None,
) -> ImageData:
    """Load a dataset by name or path.

    Parameters
    ----------
    spec : str or path
        "cifar10" for the official dataset (``cifar10(root, train, download)``),
        "synthetic-shapes" for ``synthetic_shapes`` (10,000 images, 32 px unless
        ``resolution``; train and test differ by seed), or a path
        to an image folder / .zip (``image_folder``). If that folder has ``train/`` and
        ``test/`` sub-folders, the one chosen by ``train`` is read.
    root : path, optional
        Download folder for "cifar10" (default ``default_data_root()``).
    train : bool
        Training or test split.
    download : bool
        For "cifar10": allow the download.
    resolution : int, optional
        For folders: centre-crop and resize to this side.
    """
    if str(spec).lower() in CIFAR10_NAMES:
        return cifar10(root if root is not None else default_data_root(), train, download)
    if str(spec).lower() == SYNTHETIC:
        return synthetic_shapes(SYNTHETIC_N, resolution or 32, seed=0 if train else 1)
    path = Path(spec).expanduser()
    if not path.exists():
        raise DatasetNotFoundError(
            f"{spec!r} is neither 'cifar10' nor an existing image folder or .zip ({path})"
        )
    split = ("train" if train else "test") if _has_splits(path) else None
    return image_folder(path, split=split, resolution=resolution)


def has_test_split(spec: str | os.PathLike) -> bool:
    """Whether ``load_images(spec, train=False)`` reads a test split: the official CIFAR-10,
    the synthetic shapes, or a folder / .zip with a ``test/`` sub-folder."""
    if str(spec).lower() in (*CIFAR10_NAMES, SYNTHETIC):
        return True
    path = Path(spec).expanduser()
    if not path.exists():
        return False
    names = _zip_names(path) if zipfile.is_zipfile(path) else _folder_names(path)
    return any(name.startswith("test/") for name in names)


def cached_images(
    spec: str | os.PathLike, train: bool = True, cache: str | os.PathLike | None = None
) -> ImageData:
    """``load_images(spec, train=train)``, decoded once and kept as a uint8 tensor file.

    The first call decodes (about 12 s for CIFAR-10's 60,000 JPEGs) and writes
    ``cache/<name>-<split>.pt``; later calls read that file. ``cache`` None decodes every
    time. The file is keyed by the source's name, size and modification time.
    """
    if cache is None:
        return load_images(spec, train=train)
    source = Path(spec).expanduser()
    stamp = f"{source.stat().st_size}-{int(source.stat().st_mtime)}" if source.exists() else "0"
    path = Path(cache) / f"{source.stem}-{stamp}-{'train' if train else 'test'}.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        return ImageData(saved["images"], saved["labels"], saved["class_names"], saved["name"],
                         source=str(spec))  # fmt: skip
    data = load_images(spec, train=train)
    path.parent.mkdir(parents=True, exist_ok=True)
    saved = dict(images=data.images, labels=data.labels, class_names=data.class_names,
                 name=data.name)  # fmt: skip
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(saved, tmp)
    os.replace(tmp, path)
    return data


def _has_splits(path: Path) -> bool:
    """Whether a folder or zip has top-level train/ or test/ sub-folders."""
    names = _zip_names(path) if zipfile.is_zipfile(path) else _folder_names(path)
    return any(name.split("/", 1)[0] in SPLITS and "/" in name for name in names)


def save_image_grid(images: Tensor, path: str | os.PathLike, nrow: int | None = None) -> Path:
    """Write a batch as a PNG grid.

    Parameters
    ----------
    images : Tensor, shape (B, C, H, W), values in [-1, 1] (clamped)
    path : path
        Output PNG; parent folders are created.
    nrow : int, optional
        Images per row (default: ceil(sqrt(B)), a near-square grid).

    Returns
    -------
    The path written.
    """
    from torchvision.utils import make_grid

    nrow = nrow or math.ceil(math.sqrt(images.shape[0]))
    grid = make_grid(to_uint8(images.cpu()), nrow=nrow, padding=2, pad_value=255)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid.permute(1, 2, 0).numpy()).save(path)
    return path
