"""Command line: ``python -m cmedu train ...`` and ``python -m cmedu sample ...``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from .device import default_device, make_generator
from .parameterization import ConsistencyModel
from .pfode import check_times
from .sampling import default_times
from .sampling import sample as sample_model
from .training import METHODS, TrainConfig, Trainer, TrainingDiverged, load_model


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m cmedu", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a consistency model (or a DSM teacher)")
    t.add_argument("--data", required=True, help="named toy (8gaussians, ...) or mixture .json")
    t.add_argument("--method", choices=METHODS, default="ict")
    t.add_argument("--out", required=True, help="run directory (resumes if it has a checkpoint)")
    t.add_argument("--steps", type=int, help="total optimiser steps (default: per method)")
    t.add_argument("--batch-size", type=int, help="default: per method (2048 for toys)")
    t.add_argument("--lr", type=float)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--device", help="cpu, cuda, mps (default: best available)")
    t.add_argument("--teacher", help="CD: directory of a DSM run (default: exact mixture score)")
    t.add_argument("--N", type=int, default=18, help="CD: grid size")
    t.add_argument("--solver", choices=("heun", "euler"), default="heun", help="CD teacher")
    t.add_argument("--distance", choices=("l2", "l1", "pseudo_huber", "lpips"))
    t.add_argument("--s0", type=int, help="CT/iCT: initial grid size")
    t.add_argument("--s1", type=int, help="CT/iCT: final grid size")
    t.add_argument("--mu-variant", choices=("paper", "code"), default="paper")
    t.add_argument("--ema-rate", type=float, help="evaluation EMA (default: adapted to --steps)")
    t.add_argument("--checkpoint-every", type=int, default=1000)
    t.add_argument("--threads", type=int, help="CPU threads (default: 1 for toys, measured)")
    t.add_argument("--no-progress", action="store_true")

    s = sub.add_parser("sample", help="draw samples from a trained consistency model")
    s.add_argument("--checkpoint", required=True, help="run directory")
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--steps", type=int, default=1)
    s.add_argument("--times", help="comma-separated time points T,tau_1,... (default: Karras)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device")
    s.add_argument("--out", required=True, help="output .npy file")
    return p


def train(args) -> None:
    torch.set_num_threads(args.threads or 1)
    cfg = TrainConfig(
        data=args.data, method=args.method, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, teacher=args.teacher, N=args.N, solver=args.solver,
        distance=args.distance, s0=args.s0, s1=args.s1, mu_variant=args.mu_variant,
        ema_rate=args.ema_rate, checkpoint_every=args.checkpoint_every,
    )  # fmt: skip
    trainer = Trainer(cfg, args.out, device=args.device)
    if trainer.step:
        print(f"resuming {args.out} at step {trainer.step} of {trainer.config.steps}")
    state = trainer.run(progress=not args.no_progress)
    if state is not None:
        print(f"trained {state.step} steps in {state.seconds:.1f} s; checkpoint in {args.out}")


def sample(args) -> None:
    device = default_device(args.device)
    model = load_model(args.checkpoint, device=device)
    if args.times:
        ts = check_times([float(v) for v in args.times.split(",")], descending=True)
    else:
        ts = default_times(args.steps)
    if len(ts) != args.steps:
        raise ValueError(f"--steps {args.steps} needs {args.steps} time points, got {len(ts)}")
    if not isinstance(model, ConsistencyModel):
        raise ValueError(
            f"{args.checkpoint} is a DSM (EDM denoiser) run, not a consistency model; "
            "`sample` needs a cd, ct or ict run"
        )
    gen = make_generator(args.seed, device)
    x = sample_model(model, (args.n, model.net.config["dim"]), ts=ts, generator=gen, device=device)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.save(args.out, x.cpu().numpy())
    print(f"wrote {args.n} samples ({args.steps}-step, times {ts.tolist()}) to {args.out}")


def main(argv=None) -> None:
    args = _parser().parse_args(argv)
    try:
        {"train": train, "sample": sample}[args.command](args)
    except (ValueError, FileNotFoundError, TrainingDiverged) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
