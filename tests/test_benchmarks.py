"""The benchmark scripts run: each on a tiny budget, so that a change in the package that
breaks them fails here rather than hours into a benchmark run."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("extra", [[], ["--set", '{"standardize": true}']])
def test_mixture_benchmark_runs_a_cell_and_writes_its_results(tmp_path, extra):
    bench = _script("mixture_benchmark")
    bench.main(["--mixtures", "0", "--seeds", "0", "--methods", "cd,ict", "--train-steps", "2",
                "--n", "200", "--out", str(tmp_path), "--name", "smoke", *extra])  # fmt: skip
    results = json.loads((tmp_path / "smoke.json").read_text())
    cells = results["mixtures"]["family-0"]["cells"]
    assert set(cells) == {"cd/0", "ict/0"}
    assert set(results["summary"]) == {f"{m}/{s}" for m in ("cd", "ict") for s in (1, 2, 4)}
    assert "| cd | 1 |" in (tmp_path / "smoke.md").read_text()


def test_mixture_benchmark_sizes_cells_by_minutes_and_pretrains_ect_within_the_budget(tmp_path):
    """--minutes: each cell's K comes from its measured step time; ECT's cell first trains a
    DSM denoiser (half the budget) and tunes it, its time counting both phases."""
    bench = _script("mixture_benchmark")
    bench.main(["--mixtures", "0", "--seeds", "0", "--methods", "ect,meanflow", "--minutes",
                "0.02", "--n", "200", "--out", str(tmp_path), "--name", "smoke"])  # fmt: skip
    results = json.loads((tmp_path / "smoke.json").read_text())
    cells = results["mixtures"]["family-0"]["cells"]
    ect = cells["ect/0"]
    assert ect["pretrain"]["method"] == "dsm" and ect["pretrain"]["steps"] >= 1
    assert ect["config"]["init_from"]  # tuned from the DSM run, not from scratch
    assert "pretrain" not in cells["meanflow/0"] and cells["meanflow/0"]["config"]["steps"] >= 1
    assert "ECT: 50% of it DSM pretraining" in (tmp_path / "smoke.md").read_text()
    no_ect = {**results, "mixtures": {"family-0": {"cells": {"meanflow/0": cells["meanflow/0"]}}}}
    assert "ECT" not in bench.budget_words(no_ect)  # a run without ECT names no DSM share
    bench.main(["--mixtures", "0", "--seeds", "0", "--methods", "ect", "--minutes", "0.02",
                "--pretrain-share", "0", "--label", "ect-scratch", "--n", "200",
                "--out", str(tmp_path), "--name", "scratch"])  # fmt: skip
    scratch = json.loads((tmp_path / "scratch.json").read_text())["mixtures"]["family-0"]
    assert "pretrain" not in scratch["cells"]["ect-scratch/0"]
    assert not scratch["cells"]["ect-scratch/0"]["config"].get("init_from")
    assert "ECT: from random weights" in (tmp_path / "scratch.md").read_text()
    bench.main(["--merge", str(tmp_path / "smoke.json"), str(tmp_path / "scratch.json"),
                "--out", str(tmp_path), "--name", "both"])  # fmt: skip
    assert "ECT's DSM share differs between the merged runs" in (tmp_path / "both.md").read_text()
    with pytest.raises(SystemExit):
        bench.main(["--minutes", "1", "--train-steps", "3", "--out", str(tmp_path)])


def test_settings_sweep_runs_each_setting_and_resumes(tmp_path):
    """A sweep: one cell per (setting, mixture, seed), measured as the family benchmark's
    cells; ``pretrain_share`` reaches ECT's budget (0: no DSM phase); a second call skips the
    finished cells; the table has a row per setting."""
    sweep = _script("settings_sweep")
    settings = tmp_path / "ect.json"
    settings.write_text(json.dumps({"half": {}, "scratch": {"pretrain_share": 0.0, "q": 4.0}}))
    argv = ["--method", "ect", "--settings", str(settings), "--mixtures", "0", "--seeds", "0",
            "--minutes", "0.02", "--n", "200", "--out", str(tmp_path),
            "--name", "sweep"]  # fmt: skip
    sweep.main(argv)
    results = json.loads((tmp_path / "sweep.json").read_text())
    cells = results["mixtures"]["family-0"]["cells"]
    assert cells["half/0"]["pretrain"]["steps"] >= 1 and cells["half/0"]["config"]["init_from"]
    assert "pretrain" not in cells["scratch/0"] and cells["scratch/0"]["config"]["q"] == 4.0
    before = (tmp_path / "sweep.json").read_text()
    sweep.main(argv)  # nothing left to run
    assert (
        json.loads((tmp_path / "sweep.json").read_text())["mixtures"]
        == json.loads(before)["mixtures"]
    )
    table = (tmp_path / "sweep.md").read_text()
    assert "| half |" in table and "| scratch |" in table and "family-0, 1 step" in table
    with pytest.raises(SystemExit):  # a budget in steps or in minutes, not both
        sweep.main([*argv, "--train-steps", "3"])


def test_mixture_benchmark_merges_runs_on_disjoint_mixtures(tmp_path):
    bench = _script("mixture_benchmark")
    for j in ("0", "1"):
        bench.main(["--mixtures", j, "--seeds", "0", "--methods", "cd", "--train-steps", "2",
                    "--n", "200", "--out", str(tmp_path), "--name", f"part{j}"])  # fmt: skip
    parts = [str(tmp_path / f"part{j}.json") for j in "01"]
    bench.main(["--merge", *parts, "--out", str(tmp_path), "--name", "all",
                "--note", "Two halves run in parallel."])  # fmt: skip
    results = json.loads((tmp_path / "all.json").read_text())
    assert set(results["mixtures"]) == {"family-0", "family-1"}
    assert "\nTwo halves run in parallel.\n" in (tmp_path / "all.md").read_text()
    assert results["summary"]["cd/1"]["cells"] == 2
    with pytest.raises(SystemExit, match=r"family-0 has cells \['cd/0'\] in two files"):
        bench.main(["--merge", parts[0], parts[0], "--out", str(tmp_path), "--name", "bad"])


def test_mixture_benchmark_labels_a_method_and_merges_methods_on_the_same_mixture(tmp_path):
    """--label keeps runs of other settings apart; --merge joins them per mixture."""
    bench = _script("mixture_benchmark")
    common = ["--mixtures", "0", "--seeds", "0", "--train-steps", "2", "--n", "200",
              "--out", str(tmp_path)]  # fmt: skip
    bench.main([*common, "--methods", "cd", "--name", "cd"])
    bench.main([*common, "--methods", "cd", "--label", "cd-heun", "--name", "relabelled"])
    relabelled = json.loads((tmp_path / "relabelled.json").read_text())
    cell = relabelled["mixtures"]["family-0"]["cells"]["cd-heun/0"]
    assert relabelled["methods"] == ["cd-heun"] and cell["config"]["method"] == "cd"
    bench.main(["--merge", str(tmp_path / "cd.json"), str(tmp_path / "relabelled.json"),
                "--out", str(tmp_path), "--name", "both"])  # fmt: skip
    both = json.loads((tmp_path / "both.json").read_text())
    assert set(both["mixtures"]["family-0"]["cells"]) == {"cd/0", "cd-heun/0"}
    assert both["methods"] == ["cd", "cd-heun"]
    assert {"cd/1", "cd-heun/1"} <= set(both["summary"])
    assert "| cd-heun | 1 |" in (tmp_path / "both.md").read_text()
    with pytest.raises(SystemExit):
        bench.main([*common, "--methods", "cd,ict", "--label", "x", "--name", "bad"])


def test_yardstick_runs_its_noise_and_ladder_on_a_small_image_folder(tmp_path):
    """benchmarks/yardstick.py end to end on 32-pixel random images (train/ and test/): the
    plumbing, with the shipped classifier and models; no figure comes from it."""
    from image_folders import write_image_folder

    data = tmp_path / "data"
    write_image_folder(data / "train", per_class=6, side=32)
    write_image_folder(data / "test", per_class=8, side=32)
    bench = _script("yardstick")
    common = ["--data", str(data), "--ns", "4", "--repeats", "2", "--ladder-n", "4",
              "--cache", str(tmp_path / "cache"),
              "--samples", str(tmp_path / "samples")]  # fmt: skip
    bench.main([*common, "--reference-n", "8", "--out", str(tmp_path / "stick")])
    result = json.loads((tmp_path / "stick.json").read_text())
    assert result["reference_n"] == 8 and len(result["noise"]) == 2 * 2  # test and train
    names = [r["samples"] for r in result["ladder"]]
    assert "cifar10-ict-tiny, 2 steps" in " ".join(names)
    assert "cifar10-dsm-tiny, one Euler step from T (1 NFE)" in names
    assert all(r["n"] == 4 for r in result["ladder"])
    with pytest.raises(SystemExit, match="16 test images: --reference-n 14"):
        bench.main([*common, "--reference-n", "14", "--out", str(tmp_path / "bad")])


def test_candidates_measure_a_shipped_model_as_the_yardstick_ladder_does(tmp_path):
    """benchmarks/candidates.py on a small image folder: the shipped iCT model reads the same
    FD, KID and classifier score as in yardstick.py's ladder (same samples, same reference),
    and a run directory is measured beside it with its own steps and images seen."""
    from image_folders import write_image_folder

    from cmedu.cli import main as cli

    data = tmp_path / "data"
    write_image_folder(data / "train", per_class=6, side=32)
    write_image_folder(data / "test", per_class=8, side=32)
    cache = ["--cache", str(tmp_path / "cache")]
    stick = _script("yardstick")
    stick.main(["--data", str(data), "--ns", "4", "--repeats", "1", "--ladder-n", "4",
                "--reference-n", "8", *cache, "--samples", str(tmp_path / "samples"),
                "--out", str(tmp_path / "stick")])  # fmt: skip
    ladder = json.loads((tmp_path / "stick.json").read_text())["ladder"]
    run = tmp_path / "ict-run"
    cli(["train", "--data", str(data / "train"), "--method", "ict", "--net", "tiny",
         "--steps", "2", "--batch-size", "3", "--dropout", "0", "--no-progress",
         "--out", str(run)])  # fmt: skip
    result = _script("candidates").main(
        ["--data", str(data), "--models", "cifar10-ict-tiny", str(run), "--steps", "1,2",
         "--n", "4", "--reference-n", "8", *cache, "--out", str(tmp_path / "cand")]
    )  # fmt: skip
    shipped = {r["sampling_steps"]: r for r in result["rows"] if r["source"] == "shipped"}
    for k in (1, 2):
        rung = next(r for r in ladder if r["samples"].startswith(f"cifar10-ict-tiny, {k} step"))
        assert {m: shipped[k]["test"][m] for m in ("fd", "kid", "classifier_score")} == {
            m: rung[m] for m in ("fd", "kid", "classifier_score")}  # fmt: skip
    ours = [r for r in result["rows"] if r["source"] == "run"]
    assert [(r["model"], r["trained_steps"], r["images_seen"]) for r in ours] == [
        ("ict-run", 2, 6)] * 2  # fmt: skip
    real = next(r for r in ladder if r["samples"] == "real test images (held out)")
    assert result["floor"]["fd"] == real["fd"]
    assert "| ict-run (run) | ict | 2 (6) |" in (tmp_path / "cand.md").read_text()
