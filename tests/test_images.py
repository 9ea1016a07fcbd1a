"""Properties of the image data module cmedu.data.images (no network, no real dataset needed)."""

import os
import pickle
import zipfile
from pathlib import Path
from urllib.error import URLError

import numpy as np
import pytest
import torch
import torchvision.datasets.cifar as tv_cifar
from PIL import Image

from cmedu.data import images as images_module
from cmedu.data.images import (
    DatasetNotFoundError,
    ImageData,
    cached_images,
    cifar10,
    has_test_split,
    image_folder,
    load_images,
    save_image_grid,
    to_model_range,
    to_uint8,
)

torch.set_num_threads(1)

CLASSES = ["cat", "airplane", "dog"]  # deliberately unsorted
# The JPEG copy of CIFAR-10 kept beside the repository (../shared/data), where present.
REAL_ZIP = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.zip"


def _random_images(n, size=(8, 8), seed=0):
    """n random RGB uint8 arrays (H, W, 3): asymmetric, so any mirror is detectable."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*size, 3), dtype=np.uint8) for _ in range(n)]


def _write_folder(root, per_class=2, split=None, seed=0):
    """Write PNGs as [split/]<class>/<i>.png; returns {relative name: array}."""
    written = {}
    arrays = iter(_random_images(per_class * len(CLASSES), seed=seed))
    for cls in CLASSES:
        for i in range(per_class):
            rel = f"{split}/{cls}/{i}.png" if split else f"{cls}/{i}.png"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            arr = next(arrays)
            Image.fromarray(arr).save(root / rel)
            written[rel] = arr
    return written


def _zip_folder(folder, zip_path):
    with zipfile.ZipFile(zip_path, "w") as z:
        for p in sorted(folder.rglob("*")):
            z.write(p, p.relative_to(folder).as_posix())
    return zip_path


def _expected(written, split=None):
    """Images and labels in the loader's order: sorted by (class, file name)."""
    prefix = f"{split}/" if split else ""
    items = sorted(
        (rel.removeprefix(prefix).split("/")[0], rel, arr)
        for rel, arr in written.items()
        if rel.startswith(prefix)
    )
    names = sorted(CLASSES)
    images = torch.from_numpy(np.stack([a for _, _, a in items])).permute(0, 3, 1, 2)
    labels = torch.tensor([names.index(c) for c, _, _ in items])
    return images, labels


def _data(n=16, seed=0):
    images = torch.from_numpy(np.stack(_random_images(n, seed=seed))).permute(0, 3, 1, 2)
    return ImageData(images.contiguous(), torch.arange(n) % 3, CLASSES, name="random")


# ----------------------------------------------------------------------------------------
# Pixel ranges


def test_to_uint8_inverts_to_model_range_exactly():
    u = torch.arange(256, dtype=torch.uint8)
    x = to_model_range(u)
    assert x.dtype == torch.float32 and x.min() == -1 and x.max() == 1
    assert torch.equal(to_uint8(x), u)


def test_to_uint8_clamps_and_rounds():
    x = torch.tensor([-3.0, -1.0, 0.0, 1.0, 7.0, 2 * 100.4 / 255 - 1])
    assert to_uint8(x).tolist() == [0, 0, 128, 255, 255, 100]


# ----------------------------------------------------------------------------------------
# Image folders and zips


def test_image_folder_round_trips_png_pixels_labels_and_class_names(tmp_path):
    written = _write_folder(tmp_path / "mydata")
    data = image_folder(tmp_path / "mydata")
    images, labels = _expected(written)
    assert data.class_names == sorted(CLASSES)
    assert torch.equal(data.images, images) and data.images.dtype == torch.uint8
    assert torch.equal(data.labels, labels) and data.labels.dtype == torch.int64
    assert len(data) == 6 and data.shape == (3, 8, 8) and data.name == "mydata"


def test_image_folder_reads_the_same_images_from_a_zip(tmp_path):
    written = _write_folder(tmp_path / "mydata")
    data = image_folder(_zip_folder(tmp_path / "mydata", tmp_path / "mydata.zip"))
    images, labels = _expected(written)
    assert torch.equal(data.images, images) and torch.equal(data.labels, labels)
    assert data.name == "mydata"


def test_image_folder_reads_only_the_requested_split(tmp_path):
    written = _write_folder(tmp_path / "d", per_class=2, split="train", seed=0)
    written |= _write_folder(tmp_path / "d", per_class=1, split="test", seed=1)
    for source in (tmp_path / "d", _zip_folder(tmp_path / "d", tmp_path / "d.zip")):
        for split, n in (("train", 6), ("test", 3)):
            data = image_folder(source, split=split)
            images, labels = _expected(written, split)
            assert len(data) == n
            assert torch.equal(data.images, images) and torch.equal(data.labels, labels)


def test_load_images_picks_the_split_from_train(tmp_path):
    _write_folder(tmp_path / "d", per_class=2, split="train")
    _write_folder(tmp_path / "d", per_class=1, split="test", seed=1)
    assert len(load_images(tmp_path / "d")) == 6
    assert len(load_images(str(tmp_path / "d"), train=False)) == 3


def test_has_test_split_says_whether_train_false_reads_a_test_split(tmp_path):
    _write_folder(tmp_path / "both", per_class=1, split="train")
    _write_folder(tmp_path / "both", per_class=1, split="test", seed=1)
    _write_folder(tmp_path / "train-only", per_class=1, split="train")
    _write_folder(tmp_path / "flat", per_class=1)
    assert has_test_split(tmp_path / "both")
    assert has_test_split(_zip_folder(tmp_path / "both", tmp_path / "both.zip"))
    assert not has_test_split(tmp_path / "train-only") and not has_test_split(tmp_path / "flat")
    assert has_test_split("cifar10") and not has_test_split(tmp_path / "missing")


def test_cached_images_decode_once_then_read_the_same_tensors(tmp_path, monkeypatch):
    _write_folder(tmp_path / "d", per_class=2, split="train")
    _write_folder(tmp_path / "d", per_class=1, split="test", seed=1)
    first = cached_images(tmp_path / "d", train=False, cache=tmp_path / "cache")
    (cached,) = (tmp_path / "cache").glob("d-*-test.pt")

    def no_decoding(*args, **kwargs):
        raise AssertionError("decoded again")

    monkeypatch.setattr(images_module, "load_images", no_decoding)
    again = cached_images(tmp_path / "d", train=False, cache=tmp_path / "cache")
    assert torch.equal(again.images, first.images) and torch.equal(again.labels, first.labels)
    assert again.class_names == first.class_names == sorted(CLASSES) and len(again) == 3


def test_split_layout_without_split_gives_a_clear_error(tmp_path):
    _write_folder(tmp_path / "d", split="train")
    with pytest.raises(ValueError, match="split="):
        image_folder(tmp_path / "d")


def test_a_zip_named_cifar10_jpeg_is_labelled_as_the_jpeg_copy(tmp_path):
    _write_folder(tmp_path / "src")
    data = image_folder(_zip_folder(tmp_path / "src", tmp_path / "cifar10-jpeg.zip"))
    assert data.name == "CIFAR-10 (JPEG copy)"


def test_mismatched_sizes_raise_an_error_naming_the_file(tmp_path):
    _write_folder(tmp_path / "d")
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(tmp_path / "d" / "dog" / "odd.png")
    with pytest.raises(ValueError, match=r"dog/odd\.png is 7x5"):
        image_folder(tmp_path / "d")


def test_resolution_centre_crops_and_resizes_every_image(tmp_path):
    _write_folder(tmp_path / "d")
    Image.fromarray(np.zeros((5, 7, 3), np.uint8)).save(tmp_path / "d" / "dog" / "odd.png")
    data = image_folder(tmp_path / "d", resolution=4)
    assert data.images.shape == (7, 3, 4, 4)


def test_grayscale_images_are_converted_to_rgb(tmp_path):
    (tmp_path / "d" / "a").mkdir(parents=True)
    Image.fromarray(np.full((4, 4), 9, np.uint8)).save(tmp_path / "d" / "a" / "g.png")
    data = image_folder(tmp_path / "d")
    assert data.images.shape == (1, 3, 4, 4) and (data.images == 9).all()


def test_empty_folder_raises_value_error_naming_folder_and_layout(tmp_path):
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    (tmp_path / "empty" / "cls" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"no images found in .*empty.*<class>/<image>"):
        image_folder(tmp_path / "empty")


def test_missing_path_raises_dataset_not_found_naming_the_path(tmp_path):
    missing = tmp_path / "nowhere.zip"
    with pytest.raises(DatasetNotFoundError, match="nowhere.zip"):
        image_folder(missing)
    with pytest.raises(FileNotFoundError, match="nowhere.zip"):
        load_images(missing)


# ----------------------------------------------------------------------------------------
# CIFAR-10 through torchvision, on a small fake copy in its on-disk layout


def _write_fake_cifar10(root, per_batch=4):
    """torchvision's layout: cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    batches = {}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, (per_batch, 3 * 32 * 32), dtype=np.uint8)
        labels = rng.integers(0, 10, per_batch).tolist()
        with open(folder / name, "wb") as f:
            pickle.dump({"data": data, "labels": labels}, f)
        batches[name] = (data, labels)
    names = [f"class{i}" for i in range(10)]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names}, f)
    return batches, names


@pytest.fixture
def exists_is_enough(monkeypatch):
    """Replace torchvision's md5 check by an existence check, for the fake files only."""
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda fpath, md5=None: os.path.isfile(fpath))


def test_cifar10_loads_torchvision_layout(tmp_path, exists_is_enough):
    batches, names = _write_fake_cifar10(tmp_path)
    train = cifar10(tmp_path, train=True, download=False)
    test = cifar10(tmp_path, train=False, download=False)
    assert len(train) == 20 and len(test) == 4 and train.shape == (3, 32, 32)
    assert train.class_names == names and train.name == "CIFAR-10"
    data, labels = batches["test_batch"]
    assert torch.equal(test.images, torch.from_numpy(data).reshape(4, 3, 32, 32))
    assert test.labels.tolist() == labels and test.labels.dtype == torch.int64


def test_cifar10_missing_without_download_raises_with_path_and_instructions(tmp_path):
    with pytest.raises(DatasetNotFoundError) as info:
        cifar10(tmp_path, download=False)
    message = str(info.value)
    assert str(tmp_path / "cifar-10-batches-py") in message
    assert "download=False" in message
    assert "cifar-10-python.tar.gz" in message and "https://www.cs.toronto.edu" in message
    assert "image_folder" in message
    assert isinstance(info.value, FileNotFoundError)


def test_cifar10_failed_download_reports_the_original_error(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise URLError("no route to host")

    monkeypatch.setattr(tv_cifar, "download_and_extract_archive", offline)
    with pytest.raises(DatasetNotFoundError, match="download failed.*no route to host") as info:
        cifar10(tmp_path, download=True)
    assert isinstance(info.value.__cause__, URLError)


def test_load_images_cifar10_goes_through_torchvision(tmp_path, exists_is_enough):
    _write_fake_cifar10(tmp_path)
    assert len(load_images("cifar10", root=tmp_path, download=False)) == 20


# ----------------------------------------------------------------------------------------
# Sampling training batches


def test_sample_returns_float_batch_in_model_range():
    x = _data().sample(32, torch.Generator().manual_seed(0))
    assert x.shape == (32, 3, 8, 8) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1


def test_sample_is_deterministic_given_a_seeded_generator():
    data = _data()
    a = data.sample(32, torch.Generator().manual_seed(5))
    b = data.sample(32, torch.Generator().manual_seed(5))
    c = data.sample(32, torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def _matches(batch, images):
    """For each sample: is it equal to some dataset image? (B,) bool."""
    flat = to_model_range(images).flatten(1)
    return (batch.flatten(1)[:, None, :] == flat[None]).all(-1).any(-1)


def test_hflip_mirrors_about_half_the_samples():
    data = _data()
    x = data.sample(400, torch.Generator().manual_seed(0))
    plain, mirrored = _matches(x, data.images), _matches(x, data.images.flip(-1))
    assert (plain ^ mirrored).all()  # each sample is an image or its mirror, never both
    assert 120 < mirrored.sum() < 280  # Binomial(400, 1/2)


def test_no_sample_is_mirrored_when_hflip_is_off():
    data = _data()
    data.hflip = False
    x = data.sample(400, torch.Generator().manual_seed(0))
    assert _matches(x, data.images).all()
    assert not _matches(x, data.images.flip(-1)).any()


def test_to_moves_the_images_and_sample_stays_on_their_device():
    data = _data().to("cpu")
    assert data.images.device.type == "cpu" and data.sample(2).device.type == "cpu"
    if torch.cuda.is_available():
        data.to("cuda")
        g = torch.Generator(device="cuda").manual_seed(0)
        assert data.sample(4, g).device.type == "cuda"


def test_image_data_rejects_float_images():
    with pytest.raises(ValueError, match="uint8"):
        ImageData(torch.zeros(2, 3, 4, 4), torch.zeros(2), ["a"])


# ----------------------------------------------------------------------------------------
# Writing images


def test_save_image_grid_writes_a_png_grid(tmp_path):
    x = to_model_range(_data(n=4).images)
    path = save_image_grid(x, tmp_path / "out" / "grid.png", nrow=2)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.size == (2 * (8 + 2) + 2, 2 * (8 + 2) + 2)
        grid = np.asarray(im.convert("RGB"))
    np.testing.assert_array_equal(grid[2:10, 2:10], _data(n=4).images[0].permute(1, 2, 0))


# ----------------------------------------------------------------------------------------
# The real offline copy, only where it exists


@pytest.mark.skipif(not REAL_ZIP.exists(), reason=f"{REAL_ZIP} not present (optional data)")
def test_real_cifar10_jpeg_zip_test_split_loads():
    data = load_images(REAL_ZIP, train=False)
    assert len(data) == 10_000 and data.shape == (3, 32, 32)
    assert data.name == "CIFAR-10 (JPEG copy)" and len(data.class_names) == 10
    assert torch.equal(data.labels.bincount(), torch.full((10,), 1000))
