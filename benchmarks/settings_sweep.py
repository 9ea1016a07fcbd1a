"""Settings sweep: one method, several settings, on family mixtures set aside for tuning.

A default is chosen on some mixtures of the family and judged on others
(``mixture_benchmark.py``'s tables use mixtures 0-3; the sweeps use others, e.g. 4 and 5).
Each setting is a JSON object of ``TrainConfig`` overrides with a name; the key
``pretrain_share`` (ECT only, with ``--minutes``) is the share of the budget spent on the DSM
pretraining instead. Every (setting, mixture, seed) cell trains and is measured exactly as a
cell of ``mixture_benchmark.py`` (same judge, teacher and ratios), and the table gives each
setting's ratios to the exact Heun-18 teacher at 1 and 2 steps: energy distance /
off-support fraction / mode TV.

    python benchmarks/settings_sweep.py --method scm --settings benchmarks/settings/scm-toy.json \
        --mixtures 4,5 --seeds 0 --minutes 2 --n 5000 --name scm-toy-settings-2026-12-02

The results file is rewritten after every cell and finished cells are skipped, so an
interrupted sweep resumes with the same command.
"""

from __future__ import annotations

import argparse
import datetime
import json
import shlex
import statistics
import sys
from pathlib import Path

import torch

from cmedu.training.budget import PRETRAIN_SHARE

sys.path.insert(0, str(Path(__file__).resolve().parent))
from mixture_benchmark import (  # noqa: E402
    Judge,
    cell_ratios,
    family_mixture,
    machine,
    parse_range,
    run_cell,
)

SWEEP_STEPS = ("1", "2")


def markdown(results: dict) -> str:
    mach = results["machine"]
    names = results["mixture_names"]
    head = " | ".join(f"{m}, {s} step{'s' if s != '1' else ''}" for m in names for s in SWEEP_STEPS)
    lines = [
        f"Settings sweep of {results['method']}, {results['date']}: `{results['command']}`",
        "",
        f"Machine: {mach['cpu']}, nproc {mach['nproc']}, torch {mach['torch']}, "
        f"{results['threads']} torch thread(s), commit {mach['commit']}. n = {results['n']}; "
        f"seeds {results['seeds']}; training: "
        + (
            f"{results['minutes']:g} min of wall time per cell"
            if results.get("minutes")
            else f"{results['train_steps']} steps"
        )
        + ".",
        "",
        "Each entry: energy distance / off-support fraction / mode TV, as ratios to the exact "
        "Heun-18 teacher (median over seeds); last column: the median over the table's "
        "mixtures of the 1-step energy and off-support ratios.",
        "",
        f"| setting | overrides | {head} | 1 step, median energy / off-support |",
        "|---|---|" + "---|" * (len(names) * len(SWEEP_STEPS)) + "---|",
    ]
    for label, overrides in results["settings"].items():
        cells, energy, off = [], [], []
        for name in names:
            entry = results["mixtures"].get(name, {"cells": {}})
            runs = [c for k, c in entry["cells"].items() if k.startswith(f"{label}/")]
            for steps in SWEEP_STEPS:
                if not runs:
                    cells.append("")
                    continue
                r = [statistics.median(v) for v in zip(*(cell_ratios(c, entry["baselines"], steps)
                                                         for c in runs))]  # fmt: skip
                cells.append(" / ".join(f"{v:.1f}" for v in r))
                if steps == "1":
                    energy.append(r[0])
                    off.append(r[1])
        med = f"{statistics.median(energy):.1f} / {statistics.median(off):.1f}" if energy else ""
        row = " | ".join(cells)
        lines.append(f"| {label} | `{json.dumps(overrides)}` | {row} | {med} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--method", required=True)
    p.add_argument("--settings", required=True, help="JSON file: {name: {overrides}}")
    p.add_argument("--only", help="comma-separated setting names to run (default: all)")
    p.add_argument("--mixtures", default="4,5")
    p.add_argument("--seeds", default="0")
    p.add_argument("--minutes", type=float)
    p.add_argument("--train-steps", type=int)
    p.add_argument("--n", type=int, default=5000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--name", required=True, help="results file stem")
    args = p.parse_args(argv)
    if bool(args.minutes) == bool(args.train_steps):
        p.error("give one of --minutes or --train-steps")
    torch.set_num_threads(args.threads)
    settings = json.loads(Path(args.settings).read_text())
    if args.only:
        settings = {k: settings[k] for k in args.only.split(",")}
    stem = Path(args.out) / args.name
    path = stem.with_suffix(".json")
    results = json.loads(path.read_text()) if path.exists() else {"mixtures": {}, "settings": {}}
    mixtures = {f"family-{j}": family_mixture(j) for j in parse_range(args.mixtures)}
    seeds = [int(s) for s in args.seeds.split(",")]
    results.update(
        command="python " + shlex.join(sys.argv) if argv is None else shlex.join(argv),
        method=args.method, date=datetime.date.today().isoformat(), machine=machine(),
        threads=torch.get_num_threads(), n=args.n, seeds=seeds, minutes=args.minutes,
        train_steps=args.train_steps, mixture_names=list(mixtures),
    )  # fmt: skip
    results["settings"].update(settings)

    def save():
        stem.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(results, indent=1, default=str))
        stem.with_suffix(".md").write_text(markdown(results))

    for name, mixture in mixtures.items():
        entry = results["mixtures"].setdefault(name, {"cells": {}})
        pending = [f"{label}/{seed}" for label in settings for seed in seeds]
        if all(key in entry["cells"] for key in pending):
            continue  # finished: no judge, no teacher run
        judge = Judge(mixture, args.n, seed=0)
        if "baselines" not in entry:
            entry["baselines"] = judge.baselines()
        for label, overrides in settings.items():
            overrides = dict(overrides)
            share = overrides.pop("pretrain_share", PRETRAIN_SHARE)
            if args.train_steps:
                overrides["steps"] = args.train_steps
            for seed in seeds:
                key = f"{label}/{seed}"
                if key in entry["cells"]:
                    continue
                cell = run_cell(name, mixture, args.method, seed, overrides, judge, args.n,
                                args.minutes, pretrain_share=share)  # fmt: skip
                entry["cells"][key] = cell
                one_step = [round(v, 1) for v in cell_ratios(cell, entry["baselines"], 1)]
                print(name, key, f"{cell['seconds']:.0f}s", one_step, flush=True)
                save()
    save()
    print(markdown(results))


if __name__ == "__main__":
    main()
