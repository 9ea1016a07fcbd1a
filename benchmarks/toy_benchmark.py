"""Toy benchmark: training time and sample quality of CD, CT and iCT on 2D mixtures.

For each dataset and method, trains with the package defaults (``TrainConfig``) and
reports the wall time and the energy distance of n samples at 1, 2 and 4 steps to n
fresh data samples, beside

* the floor: n data samples against the same n reference samples (the estimator's noise);
* the teacher: the PF-ODE with the exact score, Heun on the N = 18 Karras grid (34 NFE);
* the scipy reference PF-ODE (DOP853, rtol = atol = 1e-8).

Usage (about 30-60 minutes on 2 CPU cores with the defaults)::

    python benchmarks/toy_benchmark.py --datasets 8gaussians,25gaussians --n 40000

Writes ``benchmarks/results/toy-<date>.md`` and ``.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import time
from pathlib import Path

import torch

import cmedu
from cmedu.metrics import energy_distance, mean_pairwise_distance

METHODS = {
    "CD Heun N=18": dict(method="cd", N=18),
    "CD Heun N=40": dict(method="cd", N=40),
    "CT": dict(method="ct"),
    "iCT": dict(method="ict"),
}


def baselines(data, ref, yy, n, seed):
    g = torch.Generator().manual_seed(seed)
    rows = {"floor (data vs data)": energy_distance(data.sample(n, g), ref, yy)}
    x_T = cmedu.prior_sample((n, data.dim), generator=g, dtype=torch.float64)
    ts = cmedu.karras_timesteps(18).flip(0)
    rows["teacher: Heun N=18 (34 NFE)"] = energy_distance(
        cmedu.solve_pf_ode(x_T, data, ts, "heun"), ref, yy
    )
    x_ref = cmedu.reference_pf_ode(x_T, data, ts[[0, -1]], rtol=1e-8, atol=1e-8)[-1]
    rows["teacher: scipy reference"] = energy_distance(x_ref, ref, yy)
    return rows


def run_method(data_name, overrides, ref, yy, n, seed):
    cfg = cmedu.TrainConfig(data=data_name, seed=seed, **overrides)
    trainer = cmedu.Trainer(cfg, device="cpu")
    start = time.perf_counter()
    trainer.run(progress=False)
    seconds = time.perf_counter() - start
    g = torch.Generator().manual_seed(seed + 1)
    eds = {}
    for steps in (1, 2, 4):
        x = cmedu.sample(trainer.ema, (n, trainer.data.dim), steps=steps, generator=g)
        eds[steps] = energy_distance(x, ref, yy)
    return seconds, eds, trainer.config


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", default="8gaussians,25gaussians")
    p.add_argument("--methods", default=",".join(METHODS), help="comma-separated names")
    p.add_argument("--n", type=int, default=40000)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="benchmarks/results")
    p.add_argument("--name", help="file name stem (default: toy-<date>)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    results = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
        f"{torch.get_num_threads()} torch threads",
        "torch": torch.__version__,
        "n": args.n,
        "datasets": {},
    }
    for name in args.datasets.split(","):
        data = cmedu.toy_data(name)
        ref = data.sample(args.n, torch.Generator().manual_seed(10_000 + args.seed))
        yy = mean_pairwise_distance(ref)
        entry = {"baselines": baselines(data, ref, yy, args.n, args.seed), "methods": {}}
        print(name, entry["baselines"], flush=True)
        for label in args.methods.split(","):
            seconds, eds, cfg = run_method(name, METHODS[label], ref, yy, args.n, args.seed)
            entry["methods"][label] = {"seconds": seconds, "energy": eds, "config": vars(cfg)}
            print(name, label, f"{seconds:.0f} s", eds, flush=True)
        results["datasets"][name] = entry
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = out / (args.name or f"toy-{results['date']}")
    stem.with_suffix(".json").write_text(json.dumps(results, indent=2, default=str))
    stem.with_suffix(".md").write_text(markdown(results))
    print(markdown(results))


def markdown(results) -> str:
    lines = [
        f"Toy benchmark, {results['date']}, {results['machine']}, torch {results['torch']}, "
        f"energy distance of n = {results['n']} samples to n fresh data samples.",
        "",
    ]
    for name, entry in results["datasets"].items():
        teacher = entry["baselines"]["teacher: Heun N=18 (34 NFE)"]
        lines += [f"**{name}**", "", "| | train s | 1 step | 2 steps | 4 steps |"]
        lines += ["|---|---|---|---|---|"]
        for label, value in entry["baselines"].items():
            lines.append(f"| {label} | | {value:.2e} | | |")
        for label, r in entry["methods"].items():
            cells = [f"{r['energy'][s]:.2e} ({r['energy'][s] / teacher:.1f}x)" for s in (1, 2, 4)]
            lines.append(f"| {label} | {r['seconds']:.0f} | " + " | ".join(cells) + " |")
        lines += ["", "(x) = ratio to the Heun N=18 teacher.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
