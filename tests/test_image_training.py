"""The one training loop on images: each method takes a step on tiny generated images,
through ``Trainer`` and through the command line; defaults follow the papers; a run
resumes bit for bit mid-curriculum; ``sample`` writes a PNG grid; the GPU options
(bf16 autocast, channels-last, fused/foreach optimisers) are built correctly on the CPU."""

from __future__ import annotations

import contextlib
import math

import numpy as np
import pytest
import torch
from image_folders import write_image_folder
from PIL import Image

from cmedu import ConsistencyModel, EDMDenoiser, TrainingDiverged, autocast
from cmedu.cli import main
from cmedu.networks.unet import UNet
from cmedu.schedules import ict_N
from cmedu.training import (
    DEFAULTS,
    TrainConfig,
    Trainer,
    build_optimizer,
    data_kind,
    load_run,
)
from cmedu.training.checkpoint import CHECKPOINT

SIDE = 8  # 8x8 RGB images: the tiny U-Net's two levels give 8x8 and 4x4
FAST = dict(net="tiny", net_overrides=dict(model_channels=16), batch_size=4)
CLI_FAST = ["--net", "tiny", "--batch-size", "4", "--device", "cpu", "--no-progress"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    """An image folder <class>/<image>.png: two classes of six random 8x8 images."""
    root = write_image_folder(tmp_path_factory.mktemp("images"), ("cats", "dogs"), 6, SIDE)
    return str(root)


@pytest.fixture(scope="module")
def teacher(images, tmp_path_factory):
    """A DSM (EDM denoiser) run of one step on the images: a teacher for CD."""
    out = tmp_path_factory.mktemp("dsm")
    cfg = TrainConfig(data=images, method="dsm", steps=1, **FAST)
    Trainer(cfg, out, device="cpu").run(progress=False)
    return str(out)


def _exit_code(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


# ---------------------------------------------------------------- one step of each method


@pytest.mark.parametrize("method", ["dsm", "cd", "ct", "ict"])
def test_each_method_takes_a_step_on_images(images, teacher, method):
    cd_teacher = teacher if method == "cd" else None
    trainer = Trainer(
        TrainConfig(data=images, method=method, steps=1, teacher=cd_teacher, **FAST), device="cpu"
    )
    assert trainer.kind == "image" and trainer.shape == (3, SIDE, SIDE)
    assert isinstance(trainer.model, EDMDenoiser if method == "dsm" else ConsistencyModel)
    assert isinstance(trainer.model.net, UNet)
    before = [p.detach().clone() for p in trainer.model.parameters()]
    state = trainer.run(progress=False)
    assert state.step == 1 and math.isfinite(state.loss) and state.images_per_second > 0
    assert any(not torch.equal(a, b) for a, b in zip(before, trainer.model.parameters()))


def test_image_data_is_recognised_and_toys_stay_toys(images):
    assert [data_kind(s) for s in (images, "cifar10", "x/cifar10-jpeg.zip", "a/b")] == ["image"] * 4
    assert [data_kind(s) for s in ("8gaussians", "mix.json", "dir/mix.json")] == ["toy"] * 3


def test_image_defaults_follow_the_papers(images):
    """CIFAR-10 settings of CM Table 3, iCT and EDM (reference sheet §4, §7, §8, §11)."""
    ict = TrainConfig(data=images).resolved()
    assert (ict.optimizer, ict.lr, ict.steps, ict.dropout, ict.fourier_scale) == (
        "radam", 1e-4, 400_000, 0.3, 0.02
    )  # fmt: skip
    assert (ict.s0, ict.s1, ict.P_mean, ict.P_std, ict.distance) == (
        10, 1280, -1.1, 2.0, "pseudo_huber"
    )  # fmt: skip
    assert (ict.net, ict.batch_size, ict.ema_rate) == ("paper", 128, 0.99993)
    ct = TrainConfig(data=images, method="ct").resolved()
    assert (ct.lr, ct.s0, ct.s1, ct.mu0, ct.fourier_scale, ct.ema_rate) == (
        4e-4, 2, 150, 0.9, 16.0, 0.9999
    )  # fmt: skip
    cd = TrainConfig(data=images, method="cd").resolved()
    assert (cd.N, cd.solver, cd.mu, cd.lr, cd.dropout) == (18, "heun", 0.0, 4e-4, 0.0)
    dsm = TrainConfig(data=images, method="dsm").resolved()
    # EDM ramps the lr over 10M of 200M images (5%); the default run sees 400k x 128 images
    assert (dsm.optimizer, dsm.lr, dsm.dropout, dsm.warmup_images) == (
        "adam", 1e-3, 0.13, 0.05 * 400_000 * 128
    )  # fmt: skip
    big = TrainConfig(data=images, method="dsm", batch_size=512, steps=400_000).resolved()
    assert big.warmup_images == 10_000_000  # the paper's run: its own ramp
    # a shorter DSM run ramps over the same 5% of its images; an explicit value is kept
    short = TrainConfig(data=images, method="dsm", steps=4000, batch_size=32).resolved()
    assert short.warmup_images == 6400
    assert (
        TrainConfig(data=images, method="dsm", steps=10, warmup_images=7).resolved().warmup_images
        == 7
    )
    # a short run averages its evaluation EMA over a tenth of its steps
    assert TrainConfig(data=images, steps=1000).resolved().ema_rate == pytest.approx(0.99)
    assert set(DEFAULTS) == {"toy", "image"}


def test_network_flags_belong_to_their_data(images):
    with pytest.raises(ValueError, match="image network.*toy"):
        TrainConfig(data="8gaussians", net="tiny").resolved()
    with pytest.raises(ValueError, match="toy MLP"):
        TrainConfig(data=images, hidden=64).resolved()
    with pytest.raises(ValueError, match="net: expected one of tiny, small, paper, got 'huge'"):
        TrainConfig(data=images, net="huge").resolved()


def test_cd_on_images_needs_a_teacher(images, teacher, tmp_path):
    with pytest.raises(ValueError, match="CD needs a teacher.*--teacher"):
        Trainer(TrainConfig(data=images, method="cd", **FAST), device="cpu")
    cd_run = tmp_path / "cd"
    cfg = TrainConfig(data=images, method="cd", steps=1, teacher=teacher, **FAST)
    Trainer(cfg, cd_run, device="cpu").run(progress=False)
    with pytest.raises(ValueError, match="is not a DSM"):
        Trainer(TrainConfig(**{**vars(cfg), "teacher": str(cd_run)}), device="cpu")


def test_dsm_learning_rate_ramps_up_over_the_warmup_images(images):
    """EDM: lr * min(1, images seen / warmup_images); here 4 images a step, 8 to ramp."""
    cfg = TrainConfig(data=images, method="dsm", steps=3, warmup_images=8, **FAST)
    trainer = Trainer(cfg, device="cpu")
    lrs = []
    for _ in trainer.steps(progress=False):
        lrs.append(trainer.optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.5e-3, 1e-3, 1e-3])


def test_a_diverged_image_run_raises_and_keeps_its_checkpoint(images, tmp_path, monkeypatch):
    cfg = TrainConfig(data=images, steps=4, checkpoint_every=1, **FAST)
    trainer = Trainer(cfg, tmp_path, device="cpu")
    loop = trainer.steps(progress=False)
    next(loop)
    saved = (tmp_path / CHECKPOINT).read_bytes()
    monkeypatch.setattr(
        trainer.objective, "distance", lambda x, y: torch.full((x.shape[0],), float("nan"))
    )
    with pytest.raises(TrainingDiverged, match="loss became nan at step 2"):
        next(loop)
    assert (tmp_path / CHECKPOINT).read_bytes() == saved


# ---------------------------------------------------------------- resume


def _state_dicts(trainer):
    parts = {"model": trainer.model, "ema": trainer.ema, "target": trainer.target}
    return {name: module for name, module in parts.items() if module is not None}


@pytest.mark.parametrize("method", ["ict", "ct"])
def test_resume_on_images_is_bitwise_identical_mid_curriculum(images, tmp_path, method):
    """K = 4 steps, stopped after the checkpoint at K/2 and resumed: the same weights, EMA,
    target, optimiser state and losses as a straight run, and N(k), mu(k) pick up where
    they were (iCT: N = 11, 21 | 41, 81 with s1 = 80; dropout 0.3 uses the global RNG)."""
    cfg = TrainConfig(data=images, method=method, steps=4, checkpoint_every=2, s1=80,
                      dropout=0.3, **FAST)  # fmt: skip
    straight = Trainer(cfg, tmp_path / "straight", device="cpu")
    straight_N = [s.N for s in straight.steps(progress=False)]

    first = Trainer(cfg, tmp_path / "split", device="cpu")
    for state in first.steps(progress=False):
        if state.step == 2:
            break
    del first
    torch.manual_seed(12345)  # whatever the global RNG holds now must not matter
    second = Trainer(cfg, tmp_path / "split", device="cpu")
    assert second.step == 2
    resumed_N = [s.N for s in second.steps(progress=False)]

    assert resumed_N == straight_N[2:]
    if method == "ict":
        assert straight_N == [ict_N(k, 4, 10, 80) for k in range(4)] == [11, 21, 41, 81]
    for name, module in _state_dicts(straight).items():
        other = _state_dicts(second)[name].state_dict()
        assert all(torch.equal(v, other[k]) for k, v in module.state_dict().items()), name
    assert second.losses == straight.losses
    opt_a, opt_b = straight.optimizer.state_dict()["state"], second.optimizer.state_dict()["state"]
    assert all(torch.equal(opt_a[i][k], opt_b[i][k]) for i in opt_a for k in opt_a[i])


# ---------------------------------------------------------------- GPU options, on the CPU


@pytest.mark.filterwarnings("ignore:CUDA is not available:UserWarning")
def test_bf16_autocast_is_built_for_cuda_and_a_no_op_on_the_cpu(images):
    ctx = autocast(torch.device("cuda"))  # constructed, not entered: no GPU needed
    assert isinstance(ctx, torch.autocast) and ctx.fast_dtype == torch.bfloat16
    assert isinstance(autocast(torch.device("cpu")), contextlib.nullcontext)
    assert isinstance(autocast(torch.device("cuda"), enabled=False), contextlib.nullcontext)
    trainer = Trainer(TrainConfig(data=images, steps=1, bf16=True, **FAST), device="cpu")
    assert math.isfinite(trainer.run(progress=False).loss)
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


def test_optimizers_use_fused_or_foreach_kernels_on_cuda_only(images):
    params = [torch.nn.Parameter(torch.zeros(3))]
    cfg = TrainConfig(data=images).resolved()  # RAdam: torch has no fused kernel for it
    radam = build_optimizer(cfg, params, torch.device("cuda"))
    assert isinstance(radam, torch.optim.RAdam) and radam.defaults["foreach"] is True
    adam = build_optimizer(TrainConfig(data=images, method="dsm").resolved(), params,
                           torch.device("cuda"))  # fmt: skip
    assert isinstance(adam, torch.optim.Adam) and adam.defaults["fused"] is True
    cpu = build_optimizer(cfg, params, torch.device("cpu"))
    assert not cpu.defaults.get("fused") and cpu.defaults.get("foreach") is None


def test_channels_last_on_request_and_by_default_only_on_cuda(images):
    plain = Trainer(TrainConfig(data=images, steps=1, **FAST), device="cpu")
    assert not plain.channels_last
    nhwc = Trainer(TrainConfig(data=images, steps=1, channels_last=True, **FAST), device="cpu")
    conv = nhwc.model.net.stem.weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and conv.shape[2] == 3
    assert nhwc.batch_of_data().is_contiguous(memory_format=torch.channels_last)
    assert math.isfinite(nhwc.run(progress=False).loss)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (bf16, fused, NHWC)")
def test_a_cuda_step_uses_bf16_nhwc_and_data_on_the_gpu(images):
    trainer = Trainer(TrainConfig(data=images, steps=2, **FAST), device="cuda")
    assert trainer.data.device.type == "cuda" and trainer.channels_last
    assert trainer.optimizer.defaults["foreach"] is True
    state = trainer.run(progress=False)
    assert math.isfinite(state.loss) and state.images_per_second > 0


# ---------------------------------------------------------------- command line


def test_cli_trains_every_method_on_images_and_samples_a_png_grid(images, tmp_path, capsys):
    runs = {m: tmp_path / m for m in ("dsm", "cd", "ct", "ict")}
    for method, out in runs.items():
        teacher = ["--teacher", str(runs["dsm"])] if method == "cd" else []
        main(["train", "--data", images, "--method", method, "--steps", "1", "--out", str(out),
              *teacher, *CLI_FAST])  # fmt: skip
        assert (out / CHECKPOINT).is_file()
        assert "trained 1 steps" in capsys.readouterr().out
    model, cfg, shape = load_run(runs["cd"])
    assert (cfg.net, shape, isinstance(model.net, UNet)) == ("tiny", (3, SIDE, SIDE), True)

    grid = tmp_path / "grid.png"
    main(["sample", "--checkpoint", str(runs["ict"]), "--n", "10", "--steps", "2",
          "--batch-size", "4", "--out", str(grid)])  # fmt: skip
    nrow, pad = math.ceil(math.sqrt(10)), 2  # save_image_grid: near-square, 2-pixel padding
    rows = math.ceil(10 / nrow)
    assert Image.open(grid).size == (nrow * (SIDE + pad) + pad, rows * (SIDE + pad) + pad)

    array = tmp_path / "x.npy"
    main(["sample", "--checkpoint", str(runs["ct"]), "--n", "5", "--out", str(array)])
    x = np.load(array)
    assert x.shape == (5, 3, SIDE, SIDE) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1  # Algorithm 1 clamps to the pixel range


def test_cli_missing_dataset_exits_2_with_the_dataset_error(tmp_path, capsys):
    for missing in (tmp_path / "nowhere", tmp_path / "nothing.zip"):
        argv = ["train", "--data", str(missing), "--out", str(tmp_path / "r"), *CLI_FAST]
        code, err = _exit_code(argv, capsys)
        assert code == 2 and "neither 'cifar10' nor an existing image folder" in err
        assert str(missing) in err


def test_cli_refuses_cd_on_images_without_teacher_and_png_for_toys(images, tmp_path, capsys):
    argv = ["train", "--data", images, "--method", "cd", "--out", str(tmp_path / "cd")]
    code, err = _exit_code(argv + CLI_FAST, capsys)
    assert code == 2 and "--teacher" in err
    toy = tmp_path / "toy"
    main(["train", "--data", "8gaussians", "--steps", "2", "--batch-size", "8", "--out", str(toy),
          "--no-progress"])  # fmt: skip
    argv = ["sample", "--checkpoint", str(toy), "--n", "4", "--out", str(tmp_path / "x.png")]
    code, err = _exit_code(argv, capsys)
    assert code == 2 and "PNG grids are for images" in err
    code, err = _exit_code(["train", "--data", "8gaussians", "--net", "tiny", "--out",
                            str(tmp_path / "n")], capsys)  # fmt: skip
    assert code == 2 and "image network" in err


def test_cli_passes_the_warmup_images_to_the_run(images, tmp_path):
    import json

    out = tmp_path / "dsm"
    main(["train", "--data", images, "--method", "dsm", "--steps", "1", "--warmup-images", "8",
          "--out", str(out), *CLI_FAST])  # fmt: skip
    assert json.loads((out / "config.json").read_text())["warmup_images"] == 8
