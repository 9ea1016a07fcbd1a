"""The runs the CIFAR-10 notebooks keep, and the choice between a run and a shipped model
(cmedu.course.runs), on toy runs that take a second."""

import pytest
import torch

from cmedu import TrainConfig, Trainer
from cmedu.course import runs
from cmedu.training.pretrained import export_pretrained


def toy_config(steps, batch_size=8):
    return TrainConfig(data="8gaussians", method="ict", steps=steps, batch_size=batch_size,
                       hidden=16, depth=2, checkpoint_every=1)  # fmt: skip


def train(directory, steps, stop_at=None, batch_size=8):
    trainer = Trainer(toy_config(steps, batch_size), directory, device="cpu")
    for state in trainer.steps(progress=False):
        if stop_at is not None and state.step == stop_at:
            break
    return trainer


@pytest.fixture
def shipped(tmp_path):
    """A 'shipped' checkpoint that saw 4 steps x 8 = 32 training images."""
    train(tmp_path / "ship-run", 4)
    export_pretrained(tmp_path / "ship-run", tmp_path / "shipped")
    return str(tmp_path / "shipped")


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv(runs.RUNS_ENV, str(tmp_path / "runs"))
    monkeypatch.delenv("CMEDU_FAST", raising=False)
    return tmp_path / "runs"


def test_the_run_folder_names_method_network_and_plan():
    cfg = TrainConfig(data="cifar10", method="ict", net="tiny", steps=150, batch_size=32)
    assert runs.run_name(7, cfg) == "07-ict-tiny-150x32"


def test_fast_mode_keeps_no_run(monkeypatch):
    monkeypatch.setenv("CMEDU_FAST", "1")
    assert runs.notebook_run_dir("07-ict") is None


def test_without_a_run_the_shipped_model_is_used_and_said(root, shipped):
    chosen = runs.run_or_shipped("07-ict", shipped)
    assert chosen.source == "shipped" and chosen.images == 32
    assert "no run in runs/07-ict*" in chosen.why and str(root) not in chosen.why


def test_an_unfinished_run_is_not_used(root, shipped):
    train(root / "07-ict-a", 10, stop_at=6)  # 48 images, but only 6 of 10 steps
    chosen = runs.run_or_shipped("07-ict", shipped)
    assert chosen.source == "shipped" and "not finished" in chosen.why


def test_a_finished_run_that_saw_fewer_images_is_not_used(root, shipped):
    train(root / "07-ict-short", 2)  # 16 images < 32
    chosen = runs.run_or_shipped("07-ict", shipped)
    assert chosen.source == "shipped"
    assert "runs/07-ict-short saw 16 training images, fewer than" in chosen.why


def test_the_finished_run_with_the_most_images_is_used(root, shipped):
    train(root / "07-ict-short", 2)
    longer = train(root / "07-ict-long", 6)  # 48 images >= 32
    train(root / "08-cd-other", 9)  # another prefix: ignored
    chosen = runs.run_or_shipped("07-ict", shipped)
    assert chosen.source == "run" and chosen.name == "runs/07-ict-long"
    assert (chosen.steps, chosen.images) == (6, 48)
    assert chosen.label == "iCT, run runs/07-ict-long (6 steps)"
    x = torch.randn(5, 2)
    t = torch.full((5,), 1.0)
    assert torch.equal(chosen.model(x, t), longer.ema.eval()(x, t))
    assert str(root) not in chosen.why


def test_run_progress_reads_step_plan_and_batch(root):
    train(root / "r", 5, stop_at=3, batch_size=4)
    assert runs.run_progress(root / "r") == (3, 5, 4)
    assert runs.run_progress(root / "nothing") is None
