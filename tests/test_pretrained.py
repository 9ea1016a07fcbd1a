"""Shipped checkpoints and the data the image notebooks use without a download: export and
load round-trip the EMA weights (float16 on disk, float32 back), a missing checkpoint is a
clear error, the shipped files load and sample, synthetic shapes are what they say, a
Trainer takes a dataset already in memory, and CD takes a shipped teacher."""

from __future__ import annotations

import pytest
import torch

import cmedu
from cmedu import course
from cmedu.data.images import SYNTHETIC, load_images, synthetic_shapes
from cmedu.training import TrainConfig, Trainer, data_kind, pretrained

FAST = dict(net="tiny", net_overrides=dict(model_channels=16), batch_size=4, resolution=8)


@pytest.fixture(scope="module")
def shapes():
    return synthetic_shapes(32, resolution=8, seed=0)


@pytest.fixture(scope="module")
def ict_run(shapes, tmp_path_factory):
    out = tmp_path_factory.mktemp("ict")
    cfg = TrainConfig(data=SYNTHETIC, method="ict", steps=2, **FAST)
    trainer = Trainer(cfg, out, device="cpu", data=shapes)
    trainer.run(progress=False)
    return out, trainer


def test_export_then_load_gives_the_ema_weights_rounded_to_float16(ict_run, tmp_path):
    run_dir, trainer = ict_run
    pretrained.export_pretrained(run_dir, tmp_path, meta={"note": "test"})
    model, info = pretrained.load_pretrained(tmp_path, with_info=True)
    assert info["step"] == 2 and info["shape"] == (3, 8, 8) and info["meta"] == {"note": "test"}
    assert info["config"].method == "ict" and not model.training
    for name, value in trainer.ema.state_dict().items():
        loaded = model.state_dict()[name]
        assert loaded.dtype == value.dtype
        if value.is_floating_point():
            torch.testing.assert_close(loaded, value.half().float(), rtol=0, atol=0)


def test_a_loaded_checkpoint_keeps_the_boundary_condition(ict_run, tmp_path):
    pretrained.export_pretrained(ict_run[0], tmp_path)
    model = pretrained.load_pretrained(tmp_path)
    x = torch.randn(3, 3, 8, 8)
    torch.testing.assert_close(model(x, cmedu.EPS), x)  # f(x, eps) = x, Eq. (5)


def test_a_missing_checkpoint_names_the_paths_and_what_is_shipped(tmp_path):
    with pytest.raises(FileNotFoundError, match="no shipped checkpoint") as err:
        pretrained.load_pretrained(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(err.value) and "Shipped:" in str(err.value)


def test_cd_takes_a_shipped_teacher_by_path(shapes, tmp_path):
    teacher_run = tmp_path / "dsm"
    Trainer(TrainConfig(data=SYNTHETIC, method="dsm", steps=1, **FAST), teacher_run,
            device="cpu", data=shapes).run(progress=False)  # fmt: skip
    pretrained.export_pretrained(teacher_run, tmp_path / "shipped")
    cfg = TrainConfig(data=SYNTHETIC, method="cd", teacher=str(tmp_path / "shipped"), steps=1,
                      **FAST)  # fmt: skip
    trainer = Trainer(cfg, device="cpu", data=shapes)
    trainer.run(progress=False)
    assert len(trainer.losses) == 1 and torch.isfinite(torch.tensor(trainer.losses)).all()


@pytest.mark.parametrize("name", pretrained.available())
def test_each_shipped_checkpoint_loads_and_samples_cifar_sized_images(name):
    model, info = pretrained.load_pretrained(name, with_info=True)
    assert info["shape"] == (3, 32, 32)
    assert {"data", "losses", "steps", "images_seen", "hardware"} <= set(info["meta"])
    assert (pretrained.CHECKPOINTS / name / "MODEL_CARD.md").is_file()
    if isinstance(model, cmedu.ConsistencyModel):
        x = cmedu.sample(model, (2, 3, 32, 32), steps=1, generator=torch.Generator().manual_seed(0))
    else:
        x = model(torch.randn(2, 3, 32, 32), 1.0)
    assert x.shape == (2, 3, 32, 32) and torch.isfinite(x).all()


def test_the_cifar10_ict_checkpoint_is_shipped():
    assert pretrained.CIFAR10_ICT in pretrained.available()


def test_example_images_are_64_labelled_cifar_images():
    images, labels = pretrained.example_images()
    assert images.shape == (64, 3, 32, 32) and images.dtype == torch.uint8
    assert set(labels.tolist()) == set(range(10))
    with pytest.raises(ValueError, match="65"):
        pretrained.example_images(65)


# --- synthetic shapes and the course's data -------------------------------------------------


def test_synthetic_shapes_are_reproducible_uint8_images_of_two_classes():
    a, b = synthetic_shapes(50, 12, seed=3), synthetic_shapes(50, 12, seed=3)
    assert a.images.shape == (50, 3, 12, 12) and a.images.dtype == torch.uint8
    assert torch.equal(a.images, b.images) and set(a.labels.tolist()) == {0, 1}
    assert not torch.equal(a.images, synthetic_shapes(50, 12, seed=4).images)
    assert a.source == SYNTHETIC and data_kind(SYNTHETIC) == "image"


def test_a_square_fills_its_box_and_a_disc_does_not():
    data = synthetic_shapes(200, 16, seed=0)
    # the shape's colour is constant inside it: count the pixels equal to the centre pixel
    centre = data.images[:, :, 8, 8]
    same = (data.images == centre[:, :, None, None]).all(1).flatten(1).sum(1).float()
    assert same[data.labels == 1].mean() > same[data.labels == 0].mean()


def test_load_images_knows_the_synthetic_name_and_its_splits_differ():
    train, test = load_images(SYNTHETIC, resolution=8), load_images(SYNTHETIC, train=False,
                                                                    resolution=8)  # fmt: skip
    assert len(train) == 10_000 and train.shape == (3, 8, 8)
    assert not torch.equal(train.images[:10], test.images[:10])


def test_synthetic_shapes_reject_bad_sizes():
    with pytest.raises(ValueError, match="resolution"):
        synthetic_shapes(4, resolution=2)


def test_course_images_are_synthetic_in_fast_mode(monkeypatch):
    monkeypatch.setenv("CMEDU_FAST", "1")
    data = course.course_images(fast_n=8, fast_resolution=8)
    assert data.source == SYNTHETIC and data.images.shape == (8, 3, 8, 8)


def test_course_images_report_missing_data_when_there_is_no_copy(monkeypatch, tmp_path):
    monkeypatch.setenv("CMEDU_FAST", "0")
    monkeypatch.setenv("CMEDU_CIFAR10_JPEG", str(tmp_path / "absent.zip"))

    def no_cifar(*args, **kwargs):
        raise cmedu.data.images.DatasetNotFoundError("CIFAR-10 not found at X")

    monkeypatch.setattr(cmedu.data.images, "cifar10", no_cifar)
    with pytest.raises(cmedu.data.images.DatasetNotFoundError, match="CIFAR-10 not found"):
        course.course_images()


def test_course_images_fall_back_to_a_jpeg_copy_and_say_so(monkeypatch, tmp_path, capsys):
    from PIL import Image

    for split in ("train", "test"):
        (tmp_path / "copy" / split / "cat").mkdir(parents=True)
        Image.new("RGB", (8, 8), (10, 20, 30)).save(tmp_path / "copy" / split / "cat" / "0.png")
    monkeypatch.setenv("CMEDU_FAST", "0")
    monkeypatch.setenv("CMEDU_CIFAR10_JPEG", str(tmp_path / "copy"))

    def no_cifar(*args, **kwargs):
        raise cmedu.data.images.DatasetNotFoundError(f"CIFAR-10 not found at {tmp_path}/c10")

    monkeypatch.setattr(cmedu.data.images, "cifar10", no_cifar)
    data = course.course_images()
    said = capsys.readouterr().out
    assert len(data) == 1 and "offline copy named by $CMEDU_CIFAR10_JPEG (copy)" in said
    assert str(tmp_path) not in said  # a stored notebook shows no path of the machine


def test_load_trained_reads_a_run_directory_and_a_shipped_checkpoint_alike(ict_run, tmp_path):
    from cmedu.training import load_trained

    run_dir, trainer = ict_run
    pretrained.export_pretrained(run_dir, tmp_path)
    x = torch.randn(2, 3, 8, 8)
    (run_model, run_cfg, run_shape), (ship_model, ship_cfg, ship_shape) = (
        load_trained(run_dir), load_trained(tmp_path)
    )  # fmt: skip
    assert run_shape == ship_shape == (3, 8, 8) and run_cfg == ship_cfg
    with torch.no_grad():  # float16 weights: equal to rounding
        torch.testing.assert_close(ship_model(x, 1.0), run_model(x, 1.0), rtol=0, atol=5e-3)


def test_load_trained_names_both_places_it_looked(tmp_path):
    from cmedu.training import load_trained

    with pytest.raises(FileNotFoundError, match="no checkpoint at .*no shipped checkpoint"):
        load_trained(tmp_path / "nowhere")
