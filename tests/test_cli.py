"""The command line, in process (``cmedu.cli.main``) and as ``python -m cmedu``: a train ->
sample round trip, errors that exit with code 2 and name the problem, and a run killed
mid-way that resumes from its last checkpoint."""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from cmedu.cli import main
from cmedu.training import TrainConfig
from cmedu.training.checkpoint import CHECKPOINT

ROOT = Path(__file__).resolve().parents[1]
FAST = ["--batch-size", "64", "--no-progress"]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A 30-step iCT run on 8gaussians, trained through the CLI."""
    out = tmp_path_factory.mktemp("ict")
    main(["train", "--data", "8gaussians", "--method", "ict", "--steps", "30", "--out", str(out)]
         + FAST)  # fmt: skip
    return out


def _exit_code(argv, capsys) -> tuple[int, str]:
    with pytest.raises(SystemExit) as exc:
        main(argv)
    return exc.value.code, capsys.readouterr().err


def test_train_then_sample_round_trip(run_dir, tmp_path, capsys):
    assert (run_dir / CHECKPOINT).is_file()
    out = tmp_path / "samples.npy"
    main(["sample", "--checkpoint", str(run_dir), "--n", "100", "--out", str(out)])
    x = np.load(out)
    assert x.shape == (100, 2) and np.isfinite(x).all()
    assert "wrote 100 samples (1-step" in capsys.readouterr().out
    # Two steps at chosen times; the same seed gives the same samples.
    out2 = tmp_path / "two.npy"
    argv = ["sample", "--checkpoint", str(run_dir), "--n", "50", "--steps", "2"]
    main([*argv, "--times", "80,0.8", "--out", str(out2)])
    first = np.load(out2)
    main([*argv, "--times", "80,0.8", "--out", str(out2)])
    assert first.shape == (50, 2) and np.array_equal(first, np.load(out2))


def test_train_prints_resuming_when_the_run_is_complete(run_dir, capsys):
    main(["train", "--data", "8gaussians", "--method", "ict", "--steps", "30", "--out",
          str(run_dir)] + FAST)  # fmt: skip
    assert f"resuming {run_dir} at step 30 of 30" in capsys.readouterr().out


def test_unknown_data_exits_2_listing_choices(tmp_path, capsys):
    code, err = _exit_code(["train", "--data", "moons3", "--out", str(tmp_path)] + FAST, capsys)
    assert code == 2 and "unknown data 'moons3'" in err and "two_moons" in err


def test_malformed_json_exits_2(tmp_path, capsys):
    bad = tmp_path / "mix.json"
    bad.write_text('{"means": [[0, 0]], "stds": [')
    code, err = _exit_code(["train", "--data", str(bad), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "not valid JSON" in err and "mix.json" in err
    bad.write_text('{"means": [[0, 0]], "stds": [-1]}')
    code, err = _exit_code(["train", "--data", str(bad), "--out", str(tmp_path / "r")], capsys)
    assert code == 2 and "std must be > 0" in err


@pytest.mark.parametrize(
    "times, steps, message",
    [
        ("80,0.001", "2", "expected times in [eps, T] = [0.002, 80], got 0.001"),
        ("100,1", "2", "expected times in [eps, T] = [0.002, 80], got 100"),
        ("80,1,2", "3", "strictly descending"),
        ("80,1", "3", "--steps 3 needs 3 time points, got 2"),
        ("80,abc", "2", "abc"),
    ],
)
def test_bad_times_exit_2_naming_the_problem(run_dir, tmp_path, capsys, times, steps, message):
    argv = ["sample", "--checkpoint", str(run_dir), "--n", "4", "--out", str(tmp_path / "x.npy")]
    code, err = _exit_code([*argv, "--steps", steps, "--times", times], capsys)
    assert code == 2 and message in err
    assert not (tmp_path / "x.npy").exists()


def test_missing_checkpoint_exits_2(tmp_path, capsys):
    code, err = _exit_code(
        ["sample", "--checkpoint", str(tmp_path / "none"), "--n", "4", "--out", "x.npy"], capsys
    )
    assert code == 2 and "no checkpoint" in err


def test_changed_settings_on_a_run_exit_2(run_dir, capsys):
    argv = ["train", "--data", "8gaussians", "--method", "ict", "--steps", "30"]
    code, err = _exit_code([*argv, "--lr", "0.01", "--out", str(run_dir)] + FAST, capsys)
    assert code == 2 and "lr: 0.001 -> 0.01" in err


def test_diverging_run_exits_2_naming_the_step(tmp_path, capsys):
    argv = ["train", "--data", "8gaussians", "--method", "ict", "--steps", "20", "--lr", "1e30"]
    code, err = _exit_code([*argv, "--out", str(tmp_path)] + FAST, capsys)
    assert code == 2 and "loss became" in err and "at step" in err


def test_cd_without_teacher_on_sample_only_data_exits_2(tmp_path, capsys):
    argv = ["train", "--data", "two_moons", "--method", "cd", "--out", str(tmp_path)]
    code, err = _exit_code(argv + FAST, capsys)
    assert code == 2 and "--teacher" in err


def _cmedu(*args) -> list[str]:
    return [sys.executable, "-m", "cmedu", *args]


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.mark.slow
def test_killed_run_resumes_from_its_last_checkpoint(tmp_path):
    """``python -m cmedu train`` killed with SIGKILL after its first checkpoint and before the
    end; rerun, it says "resuming" at the saved step and finishes."""
    out = tmp_path / "run"
    args = _cmedu("train", "--data", "8gaussians", "--method", "ict", "--steps", "300",
                  "--checkpoint-every", "20", "--out", str(out), *FAST)  # fmt: skip
    proc = subprocess.Popen(args, env=_env(), cwd=tmp_path, stdout=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / CHECKPOINT).is_file() and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL  # killed, not finished
    saved = torch.load(out / CHECKPOINT, weights_only=True)["step"]
    assert saved % 20 == 0 and 0 < saved < 300

    done = subprocess.run(args, env=_env(), cwd=tmp_path, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert f"resuming {out} at step {saved} of 300" in done.stdout
    assert "trained 300 steps" in done.stdout
    assert torch.load(out / CHECKPOINT, weights_only=True)["step"] == 300


def test_sampling_a_dsm_run_is_refused(tmp_path, capsys):
    """``sample`` is for consistency models. A DSM run holds an EDM denoiser D(x, t); one
    "step" D(x_T, T) puts every sample at about the data mean, so it must be refused rather
    than written out silently."""
    run = tmp_path / "dsm"
    main(["train", "--data", "8gaussians", "--method", "dsm", "--steps", "5", "--out", str(run)]
         + FAST)  # fmt: skip
    argv = ["sample", "--checkpoint", str(run), "--n", "8", "--out", str(tmp_path / "x.npy")]
    code, err = _exit_code(argv, capsys)
    assert code == 2 and "consistency model" in err
    assert not (tmp_path / "x.npy").exists()


# ---------------------------------------------------------------- generated from TrainConfig


def test_minutes_size_the_run_from_the_measured_step_time_and_a_resume_keeps_it(
    tmp_path, capsys, monkeypatch
):
    """--minutes M: K = floor(60 M / s) with s the median step time of a throwaway probe
    (here a fake clock: 62.5 ms a step, so 0.5 min -> 480 steps); resuming keeps that K."""
    import json

    from cmedu.training import budget

    clock = iter(0.0625 * i for i in range(10**6))
    monkeypatch.setattr(budget.time, "perf_counter", lambda: next(clock))
    found = budget.steps_for_minutes(
        TrainConfig(data="8gaussians", method="cd", batch_size=8, hidden=8, depth=1), 0.5
    )
    assert (found.steps, found.step_seconds, found.probe) == (480, 0.0625, 20)
    monkeypatch.setattr(budget, "steps_for_minutes", lambda *a, **k: found)
    out = tmp_path / "run"
    argv = ["train", "--data", "8gaussians", "--method", "cd", "--hidden", "8", "--depth", "1",
            "--minutes", "0.5", "--out", str(out), *FAST]  # fmt: skip
    main(argv)
    assert "sized the run to 0.5 min: 480 steps at 62.5 ms a step" in capsys.readouterr().out
    assert json.loads((out / "config.json").read_text())["steps"] == 480
    main(argv)  # the run is complete: the same command resumes it, with its own K
    assert f"resuming {out} at step 480 of 480" in capsys.readouterr().out
    code, err = _exit_code([*argv[:-4], "--steps", "5", "--out", str(out), *FAST], capsys)
    assert code != 0


def test_train_for_minutes_charges_ect_for_the_dsm_pretraining_it_starts_from(monkeypatch):
    """Equal wall time for ECT: a DSM run on the same data, with ECT's network (its Fourier
    frequencies included), for its share of the budget, then ECT from its weights; the
    seconds count both phases. Other methods train for the whole budget."""
    from cmedu.training import budget

    shares = []

    def fake_budget(cfg, minutes, **kw):
        shares.append((cfg.method, minutes))
        return budget.Budget(3, minutes, 0.01, 1)

    monkeypatch.setattr(budget, "steps_for_minutes", fake_budget)
    cfg = TrainConfig(data="8gaussians", method="ect", batch_size=8, hidden=8, depth=1)
    run = budget.train_for_minutes(cfg, 2.0, pretrain_share=0.25)
    assert shares == [("dsm", 0.5), ("ect", 1.5)]
    dsm, ect = run.pretrain, run.trainer
    assert (dsm.config.method, dsm.config.steps, ect.config.steps) == ("dsm", 3, 3)
    assert dsm.config.fourier_scale == ect.config.fourier_scale != TrainConfig(
        data="8gaussians", method="dsm").resolved().fourier_scale  # fmt: skip
    assert dsm.config.lr == TrainConfig(data="8gaussians", method="dsm").resolved().lr
    assert torch.equal(dsm.model.net.embed.freqs, ect.model.net.embed.freqs)
    assert run.seconds > 0 and ect.config.init_from == "DSM pretraining of this budget"
    shares.clear()
    run = budget.train_for_minutes(dataclasses.replace(cfg, method="ict"), 2.0)
    assert shares == [("ict", 2.0)] and run.pretrain is None
    shares.clear()
    run = budget.train_for_minutes(cfg, 2.0, pretrain_share=0)  # ECT from random weights
    assert shares == [("ect", 2.0)] and run.pretrain is None
    assert run.trainer.config.init_from is None
    for share in (1.0, -0.1):
        with pytest.raises(ValueError, match="pretrain_share"):
            budget.train_for_minutes(cfg, 1.0, pretrain_share=share)


def test_every_train_config_field_has_its_option_with_the_fields_default(tmp_path):
    """The train command is generated from TrainConfig: one option per field, its default the
    field's, so that parsing only the required options rebuilds TrainConfig's defaults."""
    import dataclasses

    from cmedu.cli import _parser
    from cmedu.training import TrainConfig

    args = _parser().parse_args(["train", "--data", "two_moons", "--out", str(tmp_path)])
    settable = [f for f in dataclasses.fields(TrainConfig) if f.metadata["cli"]]
    fields = {f.name: getattr(args, f.name) for f in settable}
    assert TrainConfig(**fields) == TrainConfig(data="two_moons")
    # Only the fields a run fills in itself (the data scale it measured) have no option.
    filled = {f.name for f in dataclasses.fields(TrainConfig) if not f.metadata["cli"]}
    assert filled == {"data_center", "data_scale"}
    assert not filled & set(vars(args))


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--steps", "-3"], "argument --steps: expected a value in [1, inf), got -3"),
        (["train", "--steps", "0"], "argument --steps: expected a value in [1, inf), got 0"),
        (["train", "--batch-size", "0"], "argument --batch-size: expected a value in [1, inf)"),
        (["train", "--lr", "0"], "argument --lr: expected a value in (0, inf), got 0"),
        (["train", "--lr", "nan"], "argument --lr: expected a finite number, got nan"),
        (["train", "--dropout", "1.5"], "argument --dropout: expected a value in [0, 1], got 1.5"),
        (["train", "--N", "1"], "argument --N: expected a value in [2, inf), got 1"),
        (["train", "--mu", "-0.1"], "argument --mu: expected a value in [0, 1], got -0.1"),
        (["train", "--ema-rate", "2"], "argument --ema-rate: expected a value in [0, 1], got 2"),
        (["train", "--hidden", "x"], "argument --hidden: expected int, got 'x'"),
        (["train", "--method", "gan"], "argument --method: invalid choice: 'gan'"),
        (["train", "--net-overrides", "[1]"], "argument --net-overrides: expected a JSON object"),
        (["train", "--threads", "0"], "argument --threads: expected an integer >= 1, got 0"),
        (["train", "--minutes", "0"], "argument --minutes: expected a finite number > 0, got 0"),
        (["train", "--minutes", "inf"], "argument --minutes: expected a finite number > 0"),
        (["sample", "--checkpoint", "x", "--n", "0"], "argument --n: expected an integer >= 1"),
        (["sample", "--checkpoint", "x", "--n", "4", "--steps", "0"],
         "argument --steps: expected an integer >= 1, got 0"),
        (["evaluate", "--checkpoint", "x", "--steps", "1,0"],
         "argument --steps: expected an integer >= 1, got 0"),
        (["evaluate", "--checkpoint", "x", "--n", "1"], "argument --n: expected an integer >= 2"),
    ],
)  # fmt: skip
def test_bad_numbers_exit_2_naming_the_option_the_range_and_the_value(argv, message, capsys):
    if argv[0] == "train":
        argv = [*argv, "--data", "8gaussians", "--out", "unused"]
    code, err = _exit_code(argv, capsys)
    assert code == 2 and message in err, err


def test_s1_below_s0_is_refused_before_training(tmp_path, capsys):
    code, err = _exit_code(["train", "--data", "8gaussians", "--s0", "20", "--s1", "10",
                            "--out", str(tmp_path)], capsys)  # fmt: skip
    assert code == 2 and "s1 = 10 is below s0 = 20" in err
    assert not (tmp_path / CHECKPOINT).exists()


def test_a_standardized_run_samples_in_data_units_and_resumes(tmp_path, capsys):
    """--standardize on a mixture around (500, -300) with spread 100: the run stores its
    scale, resumes with the same command, and its samples land in data units. Measured
    after 200 steps: sample mean within 2.1 of the data's, spread 0.69x the data's."""
    from cmedu import GaussianMixture

    mix = GaussianMixture([[400.0, -300.0], [600.0, -300.0]], [20.0, 20.0])
    mix.to_json(tmp_path / "far.json")
    run = tmp_path / "run"
    argv = ["train", "--data", str(tmp_path / "far.json"), "--method", "ict", "--steps", "200",
            "--standardize", "--out", str(run), "--batch-size", "256", "--no-progress"]  # fmt: skip
    main(argv)
    main(argv)  # complete: resumes (nothing to do) rather than refusing a changed config
    out = tmp_path / "x.npy"
    main(["sample", "--checkpoint", str(run), "--n", "2000", "--out", str(out)])
    x = np.load(out)
    assert np.abs(x.mean(0) - [500.0, -300.0]).max() < 30
    assert 0.5 < x[:, 0].std() / 102.0 < 1.5  # data: sqrt(100^2 + 20^2) = 102
