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
