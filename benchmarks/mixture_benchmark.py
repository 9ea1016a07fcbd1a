"""Benchmark family: CD, CT and iCT on random Gaussian mixtures they were not tuned on.

Mixture j of the family is ``cmedu.toys.random_mixture(j, dim)`` with dim = 2 for even j
and 8 for odd j: 2 to 16 components, spreads 0.3 to 3, component stds 0.02 to 0.5,
unequal weights. Each (mixture, method, seed) cell trains with ``cmedu.Trainer`` (package
defaults unless overridden), draws n samples with 1, 2 and 4 steps, and measures against
the exact mixture:

* energy distance to n fresh data samples (``cmedu.metrics.energy_distance``);
* off-support fraction, 1 - precision (``cmedu.metrics.off_support_fraction``);
* mode-weight total variation, 1 - recall (``cmedu.metrics.mode_coverage_error``);

each also as a ratio to the exact-score teacher: Heun on the N = 18 Karras grid (34 NFE)
from the same prior. Where the teacher's energy distance is below the estimator's noise
(its standard deviation for two samples of one law is of order E||X - X'|| / n), the
energy ratio divides by that noise scale instead, so that it stays finite and positive.
The summary gives, per method and step count, the median and the worst over mixtures (each
mixture's median over seeds) of every ratio, the training wall time and the number of
torch threads.

The results file is rewritten after every cell and finished cells are skipped, so an
interrupted run resumes with the same command. ``--full`` runs the whole protocol
(mixtures 0-7, seeds 0-2, package defaults, n = 40000); ``--data MIX.json`` benchmarks
one mixture file instead of the family.

    python benchmarks/mixture_benchmark.py --full
    python benchmarks/mixture_benchmark.py --mixtures 0-7 --seeds 0 --train-steps 2000 --n 10000
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

import cmedu
from cmedu.metrics import (
    energy_distance,
    log_density_threshold,
    mean_pairwise_distance,
    mixture_scores,
)
from cmedu.toys import GaussianMixture, random_mixture
from cmedu.training import in_data_units
from cmedu.training.budget import PRETRAIN_SHARE, train_for_minutes

STEPS = (1, 2, 4)
MEASURES = ("energy", "off_support", "mode_tv")


def family_mixture(j: int) -> GaussianMixture:
    """Mixture j of the benchmark family: 2D for even j, 8D for odd j."""
    return random_mixture(j, 2 if j % 2 == 0 else 8)


def parse_range(spec: str) -> list[int]:
    """ "0-7,10" -> [0, 1, ..., 7, 10]."""
    out = []
    for part in spec.split(","):
        lo, _, hi = part.partition("-")
        out += list(range(int(lo), int(hi or lo) + 1))
    return out


class Judge:
    """The exact measures of samples of one mixture, and the teacher's values of them."""

    def __init__(self, mixture: GaussianMixture, n: int, seed: int):
        self.mixture, self.n = mixture, n
        g = torch.Generator().manual_seed(10_000 + seed)
        self.ref = mixture.sample(n, g, dtype=torch.float64)
        self.yy = mean_pairwise_distance(self.ref)
        self.threshold = log_density_threshold(mixture, generator=g)

    def measure(self, x: torch.Tensor) -> dict[str, float]:
        scores = mixture_scores(x, self.mixture, self.threshold)
        return {"energy": energy_distance(x.double(), self.ref, self.yy), **scores}

    def baselines(self) -> dict[str, dict[str, float]]:
        g = torch.Generator().manual_seed(1)
        x_T = cmedu.prior_sample((self.n, self.mixture.dim), generator=g, dtype=torch.float64)
        teacher = cmedu.solve_pf_ode(x_T, self.mixture, cmedu.karras_timesteps(18).flip(0))
        return {
            "data": self.measure(self.mixture.sample(self.n, g, dtype=torch.float64)),
            "teacher": self.measure(teacher),
            "energy_noise": self.yy / self.n,
        }


def denominators(baselines: dict) -> dict[str, float]:
    """The teacher's value of each measure; for the energy distance at least its noise."""
    t = baselines["teacher"]
    return {**t, "energy": max(t["energy"], baselines["energy_noise"])}


def cell_ratios(cell: dict, baselines: dict, steps) -> list[float]:
    """A cell's energy / off-support / mode TV at ``steps`` over the teacher's
    (``denominators``)."""
    den = denominators(baselines)
    return [cell["scores"][str(steps)][m] / den[m] for m in MEASURES]


def run_cell(name, mixture, method, seed, overrides, judge, n, minutes=None,
             pretrain_share=PRETRAIN_SHARE) -> dict:  # fmt: skip
    """Train one (mixture, method, seed) cell and measure its 1-, 2- and 4-step samples.

    With ``minutes``, the cell trains for that wall time (``train_for_minutes``: ECT's DSM
    pretraining inside the budget, ``pretrain_share`` of it); otherwise for the overrides' or the
    package's steps (ECT from a random initialisation unless ``init_from`` is given)."""
    cfg = cmedu.TrainConfig(data=name, method=method, seed=seed, **overrides)
    pretrain = None
    if minutes:
        run = train_for_minutes(
            cfg, minutes, data=mixture, device="cpu", pretrain_share=pretrain_share
        )
        trainer, seconds = run.trainer, run.seconds
        if run.pretrain is not None:
            pretrain = {"method": "dsm", "steps": run.pretrain.config.steps}
    else:
        trainer = cmedu.Trainer(cfg, device="cpu", data=mixture)
        start = time.perf_counter()
        trainer.run(progress=False)
        seconds = time.perf_counter() - start
    g = torch.Generator().manual_seed(seed + 1)
    model = in_data_units(trainer.ema, trainer.config)  # a standardized run: DataScaled
    scores = {}
    with torch.no_grad():
        for steps in STEPS:
            x = cmedu.sample(model, (n, mixture.dim), steps=steps, generator=g)
            scores[str(steps)] = judge.measure(x)
    cell = {
        "seconds": seconds,
        "threads": torch.get_num_threads(),
        "scores": scores,
        "config": {k: v for k, v in vars(trainer.config).items() if v is not None},
    }
    if pretrain:
        cell["pretrain"] = pretrain
    return cell


def machine() -> dict:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        commit = ""
    return {"cpu": cpu, "nproc": os.cpu_count(), "torch": torch.__version__, "commit": commit}


def summary(results: dict) -> dict:
    """Per method and step count: median and worst over mixtures of each mixture's median
    over seeds of measure / teacher's measure; and the training seconds."""
    out = {}
    for method in results["methods"]:
        for steps in STEPS:
            per_mix = {m: [] for m in MEASURES}
            seconds = []
            for entry in results["mixtures"].values():
                teacher = denominators(entry["baselines"])
                cells = [c for k, c in entry["cells"].items() if k.startswith(f"{method}/")]
                if not cells:
                    continue
                seconds += [c["seconds"] for c in cells]
                for m in MEASURES:
                    ratios = [c["scores"][str(steps)][m] / teacher[m] for c in cells]
                    per_mix[m].append(statistics.median(ratios))
            if not seconds:
                continue
            row = {"cells": len(seconds), "seconds": statistics.median(seconds)}
            for m in MEASURES:
                row[m] = {"median": statistics.median(per_mix[m]), "worst": max(per_mix[m])}
            out[f"{method}/{steps}"] = row
    return out


def seeds_run(results: dict) -> list[int]:
    """The training seeds of the finished cells."""
    cells = [k for e in results["mixtures"].values() for k in e["cells"]]
    return sorted({int(k.split("/")[1]) for k in cells})


def as_list(x) -> list:
    return x if isinstance(x, list) else [x]


def has_ect(results: dict) -> bool:
    """Whether any cell trained ECT (labels may rename it, the configs do not)."""
    cells = (c for entry in results["mixtures"].values() for c in entry["cells"].values())
    return any(c["config"].get("method") == "ect" for c in cells)


def budget_words(results: dict) -> str:
    if results.get("minutes"):
        words = f"{results['minutes']:g} min of wall time per cell, K from the measured step time"
        if not has_ect(results):  # ECT's DSM share means nothing to the other methods
            return words
        share = results.get("pretrain_share", PRETRAIN_SHARE)
        if share is None:  # merged runs with different shares
            ect = "ECT's DSM share differs between the merged runs (each cell gives its DSM steps)"
        elif share == 0:
            ect = "ECT: from random weights, no DSM pretraining"
        else:
            ect = f"ECT: {share:.0%} of it DSM pretraining, the rest tuning"
        return f"{words}; {ect}"
    return f"{results['train_steps']} steps" if results["train_steps"] else "package defaults"


def markdown(results: dict) -> str:
    mach, s = results["machine"], results["summary"]
    lines = [
        f"Mixture-family benchmark, {results['date']}: "
        + " and ".join(f"`{c}`" for c in as_list(results["command"])),
        "",
        f"Machine: {mach['cpu']}, nproc {mach['nproc']}, torch {mach['torch']}, "
        f"{results['threads']} torch thread(s), commit {mach['commit']}. "
        f"n = {results['n']} samples; mixtures {results['mixture_names']}; "
        f"seeds run {seeds_run(results)} of {results['seeds']}; "
        f"overrides {results['overrides'] or 'none'} "
        f"(training: {budget_words(results)}).",
        *([results["note"]] if results.get("note") else []),
        "",
        "Ratios to the exact-score teacher (Heun, N = 18, 34 NFE): median over mixtures "
        "(each the median over seeds) / worst mixture. energy: energy distance; off-support: "
        "fraction of samples below the data's 1% log-density quantile (1 - precision); "
        "mode TV: total variation between mode weights and mixture weights (1 - recall).",
        "",
        "| method | steps | cells | train s (median) | energy | off-support | mode TV |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, row in s.items():
        method, steps = key.split("/")
        cells = [f"{row[m]['median']:.2f}x / {row[m]['worst']:.2f}x" for m in MEASURES]
        lines.append(
            f"| {method} | {steps} | {row['cells']} | {row['seconds']:.0f} | "
            + " | ".join(cells)
            + " |"
        )
    lines += [
        "",
        "Per mixture (teacher's absolute values; then each cell's ratios at 1/2/4 steps):",
        "",
    ]
    for name, entry in results["mixtures"].items():
        t = entry["baselines"]["teacher"]
        d = entry["baselines"]["data"]
        lines.append(
            f"- **{name}** ({entry['description']}): teacher energy {t['energy']:.2e}, "
            f"(noise {entry['baselines']['energy_noise']:.1e}), "
            f"off-support {t['off_support']:.3f}, "
            f"mode TV {t['mode_tv']:.3f}; data itself "
            f"{d['energy']:.1e}, {d['off_support']:.3f}, {d['mode_tv']:.3f}"
        )
        for key, c in entry["cells"].items():
            parts = []
            for steps in STEPS:
                r = cell_ratios(c, entry["baselines"], steps)
                parts.append("/".join(f"{v:.1f}" for v in r))
            k = c["config"].get("steps")
            pre = f" after {c['pretrain']['steps']} DSM steps" if "pretrain" in c else ""
            lines.append(f"  - {key} ({c['seconds']:.0f} s, {k} steps{pre}): " + "; ".join(parts))
    return "\n".join(lines) + "\n"


def merge(files: list[str], stem: Path, note: str | None = None) -> None:
    """One results file from several runs of one protocol (n, seeds, overrides, budget):
    on disjoint mixtures (e.g. run in parallel), or on the same mixtures with other methods
    or ``--label``s, whose cells are then joined per mixture. Shared mixtures must have the
    same baselines, and no cell may appear in two files."""
    parts = [json.loads(Path(f).read_text()) for f in files]
    out = dict(parts[0], mixtures={}, mixture_names=[], methods=[],
               command=[c for p in parts for c in as_list(p["command"])])  # fmt: skip
    for part in parts:
        for key in ("n", "seeds", "overrides", "train_steps", "minutes"):
            if part.get(key) != parts[0].get(key):
                raise SystemExit(f"--merge: {key} differs between the files ({part.get(key)})")
        for name, entry in part["mixtures"].items():
            if name not in out["mixtures"]:
                out["mixtures"][name] = json.loads(json.dumps(entry))  # a copy
                out["mixture_names"].append(name)
                continue
            have = out["mixtures"][name]
            if have["baselines"] != entry["baselines"]:
                raise SystemExit(f"--merge: {name}'s baselines differ between the files")
            if set(have["cells"]) & set(entry["cells"]):
                shared = sorted(set(have["cells"]) & set(entry["cells"]))
                raise SystemExit(f"--merge: {name} has cells {shared} in two files")
            have["cells"].update(entry["cells"])
        out["methods"] += [m for m in part["methods"] if m not in out["methods"]]
    shares = {part.get("pretrain_share", PRETRAIN_SHARE) for part in parts}
    out["pretrain_share"] = shares.pop() if len(shares) == 1 else None
    if note:
        out["note"] = note
    out["summary"] = summary(out)
    stem.with_suffix(".json").write_text(json.dumps(out, indent=1, default=str))
    stem.with_suffix(".md").write_text(markdown(out))
    print(markdown(out))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--full", action="store_true", help="mixtures 0-7, seeds 0-2, n 40000")
    p.add_argument("--mixtures", default="0-7", help="family indices, e.g. 0-7 or 8-11")
    p.add_argument("--data", help="one mixture .json file instead of the family")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default="cd,ct,ict")
    p.add_argument(
        "--label",
        help="name the one method's cells LABEL/seed instead of METHOD/seed, e.g. to "
        "keep runs of other settings apart (--methods meanflow --label meanflow-imagenet)",
    )
    p.add_argument("--train-steps", type=int, help="training steps (default: package's)")
    p.add_argument(
        "--minutes",
        type=float,
        help="train each cell for this wall-clock budget "
        "(K from the measured step time) instead of a number of steps",
    )
    p.add_argument(
        "--pretrain-share",
        type=float,
        default=PRETRAIN_SHARE,
        help="ECT with --minutes: the share of the budget that trains its DSM start "
        "(0: ECT from random weights for the whole budget)",
    )
    p.add_argument("--set", default="{}", help='JSON of TrainConfig overrides, e.g. {"lr":1e-3}')
    p.add_argument("--n", type=int, default=40000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--name", help="file name stem (default: mixtures-<date>)")
    p.add_argument(
        "--merge",
        nargs="+",
        metavar="JSON",
        help="join the results files of runs "
        "on disjoint mixtures (e.g. run in parallel) into --out/--name, and stop",
    )
    p.add_argument("--note", help="a paragraph for the results file, under its header")
    args = p.parse_args(argv)
    if args.merge:
        return merge(args.merge, Path(args.out) / args.name, args.note)
    if args.full:
        args.mixtures, args.seeds, args.n, args.train_steps = "0-7", "0,1,2", 40000, None
    torch.set_num_threads(args.threads)
    overrides = json.loads(args.set)
    if args.train_steps and args.minutes:
        p.error("give --train-steps or --minutes, not both")
    if args.train_steps:
        overrides["steps"] = args.train_steps
    if args.data:
        mixtures = {Path(args.data).stem: (GaussianMixture.from_json(args.data), args.data)}
    else:
        mixtures = {}
        for j in parse_range(args.mixtures):
            m = family_mixture(j)
            mixtures[f"family-{j}"] = (m, f"random_mixture({j}, dim={m.dim})")
    seeds = [int(s) for s in args.seeds.split(",")]
    methods = args.methods.split(",")
    if args.label and len(methods) != 1:
        p.error("--label names the cells of one method: give one in --methods")
    labels = {method: args.label or method for method in methods}
    date = datetime.date.today().isoformat()
    stem = Path(args.out) / (args.name or f"mixtures-{date}")
    results = (
        json.loads(stem.with_suffix(".json").read_text())
        if stem.with_suffix(".json").exists()
        else {}
    )
    results.update(
        command="python " + shlex.join(sys.argv) if argv is None else shlex.join(argv),
        date=date, machine=machine(), threads=torch.get_num_threads(), n=args.n,
        seeds=seeds, methods=list(labels.values()), overrides=overrides,
        train_steps=args.train_steps, minutes=args.minutes,
        pretrain_share=args.pretrain_share, mixture_names=list(mixtures),
    )  # fmt: skip
    if args.note:
        results["note"] = args.note
    results.setdefault("mixtures", {})

    def save():
        results["summary"] = summary(results)
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))
        stem.with_suffix(".md").write_text(markdown(results))

    judges = {}
    for seed in seeds:  # seed-major: every mixture gets seed 0 before any gets seed 1
        for name, (mixture, description) in mixtures.items():
            entry = results["mixtures"].setdefault(name, {"description": description, "cells": {}})
            for method in methods:
                key = f"{labels[method]}/{seed}"
                if key in entry["cells"]:
                    continue
                if name not in judges:
                    judges[name] = Judge(mixture, args.n, seed=0)
                    if "baselines" not in entry:
                        entry["baselines"] = judges[name].baselines()
                        save()
                cell = run_cell(name, mixture, method, seed, overrides, judges[name], args.n,
                                args.minutes, args.pretrain_share)  # fmt: skip
                entry["cells"][key] = cell
                ratios = {
                    s: [round(v, 2) for v in cell_ratios(cell, entry["baselines"], s)]
                    for s in cell["scores"]
                }
                print(f"{name} {key} {cell['seconds']:.0f}s {ratios}", flush=True)
                save()
    save()
    print(markdown(results))


if __name__ == "__main__":
    main()
