"""Command line: ``python -m cmedu train ...`` and ``python -m cmedu sample ...``.

Toys and images share both commands::

    python -m cmedu train --data 8gaussians --method ict --out runs/toy
    python -m cmedu train --data cifar10 --data-root ~/data --net small --out runs/ict
    python -m cmedu train --data cifar10-jpeg.zip --method dsm --out runs/edm
    python -m cmedu train --data cifar10-jpeg.zip --method cd --teacher runs/edm --out runs/cd
    torchrun --standalone --nproc_per_node 8 -m cmedu train --data cifar10 \\
        --batch-size 1024 --out runs/ict8      # 128 images per GPU
    python -m cmedu sample --checkpoint runs/ict --n 64 --steps 2 --out grid.png
    python -m cmedu evaluate --checkpoint runs/ict --steps 1,2 --n 50000 --out fid.json
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

from . import distributed
from .device import default_device, make_generator
from .images import save_image_grid
from .parameterization import ConsistencyModel
from .pfode import check_times
from .sampling import default_times
from .sampling import sample as sample_model
from .training import METHODS, NETS, TrainConfig, Trainer, TrainingDiverged, data_kind, load_trained


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cmedu", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    t = sub.add_parser("train", help="train a consistency model (or a DSM teacher)")
    t.add_argument(
        "--data", required=True,
        help="named toy (8gaussians, ...), mixture .json, 'cifar10', 'synthetic-shapes', or an "
        "image folder or .zip of <class>/<image> (its train/ split if it has one)",
    )  # fmt: skip
    t.add_argument("--data-root", help="cifar10: folder that holds or receives the download")
    t.add_argument("--resolution", type=int, help="image folders: centre-crop and resize")
    t.add_argument("--method", choices=METHODS, default="ict")
    t.add_argument("--net", choices=NETS, help="images: U-Net preset (default: paper)")
    t.add_argument("--out", required=True, help="run directory (resumes if it has a checkpoint)")
    t.add_argument("--steps", type=int, help="total optimiser steps (default: per method)")
    t.add_argument(
        "--batch-size", type=int,
        help="global batch, split evenly over torchrun processes (default: 2048 toys, 128 images)",
    )  # fmt: skip
    t.add_argument("--lr", type=float)
    t.add_argument("--dropout", type=float, help="default: per method (images: iCT 0.3, DSM 0.13)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument(
        "--standardize", action="store_true",
        help="train on (x - mean) / (std / 0.5): data of any scale (cmedu.data_scale)",
    )  # fmt: skip
    t.add_argument("--device", help="cpu, cuda, mps (default: best available)")
    t.add_argument(
        "--teacher",
        help="CD: directory of a DSM run, or a shipped teacher (e.g. cifar10-dsm-tiny); toy "
        "mixtures: the exact score",
    )
    t.add_argument(
        "--warmup-images", type=int,
        help="DSM: ramp the lr up over this many images (default: 5%% of the run, at most 10M)",
    )  # fmt: skip
    t.add_argument("--N", type=int, default=18, help="CD: grid size")
    t.add_argument("--solver", choices=("heun", "euler"), default="heun", help="CD teacher")
    t.add_argument("--distance", choices=("l2", "l1", "pseudo_huber", "lpips"))
    t.add_argument("--s0", type=int, help="CT/iCT: initial grid size")
    t.add_argument("--s1", type=int, help="CT/iCT: final grid size")
    t.add_argument("--mu", type=float, help="CD: target EMA rate (default: 0.95 toys, 0 images)")
    t.add_argument("--mu-variant", choices=("paper", "code"), default="paper")
    t.add_argument("--ema-rate", type=float, help="evaluation EMA (default: adapted to --steps)")
    t.add_argument("--checkpoint-every", type=int, default=1000)
    t.add_argument("--threads", type=int, help="CPU threads (default: 1 for toys, measured)")
    t.add_argument("--compile", action="store_true", help="torch.compile the network")
    t.add_argument("--no-bf16", action="store_true", help="CUDA: train in float32")
    t.add_argument(
        "--channels-last", action=argparse.BooleanOptionalAction,
        help="images: NHWC memory layout (default: on CUDA only)",
    )  # fmt: skip
    t.add_argument("--no-progress", action="store_true")

    s = sub.add_parser("sample", help="draw samples from a trained consistency model")
    s.add_argument(
        "--checkpoint", required=True, help="run directory, or a shipped checkpoint (name or path)"
    )
    s.add_argument("--n", type=int, required=True)
    s.add_argument("--steps", type=int, default=1)
    s.add_argument("--times", help="comma-separated time points T,tau_1,... (default: Karras)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device")
    s.add_argument("--batch-size", type=int, default=256, help="images drawn at a time")
    s.add_argument(
        "--out", required=True,
        help="output .npy (toys: (n, 2); images: (n, C, H, W) in [-1, 1]) or, for images, .png",
    )  # fmt: skip

    e = sub.add_parser("evaluate", help="FID, Inception Score and LPIPS diversity of samples")
    e.add_argument(
        "--checkpoint", required=True,
        help="run directory, or a shipped checkpoint: a name under checkpoints/ or a path",
    )  # fmt: skip
    e.add_argument("--steps", default="1,2", help="comma-separated step counts (default 1,2)")
    e.add_argument(
        "--times",
        help="time points per step count, ';' between counts, e.g. '80;80,0.821' (overrides "
        "--steps; default: cmedu.default_times)",
    )
    e.add_argument(
        "--n", type=int, default=50_000,
        help="samples per step count (papers: 50000; fewer bias FID upward; the report says n)",
    )  # fmt: skip
    e.add_argument("--batch-size", type=int, default=250)
    e.add_argument(
        "--data", default="cifar10",
        help="reference training set: 'cifar10' (official, downloaded) or an image folder / .zip",
    )  # fmt: skip
    e.add_argument("--data-root", help="cifar10: folder that holds or receives the download")
    e.add_argument("--n-ref", type=int, help="reference images (default: the whole train split)")
    e.add_argument("--lpips-pairs", type=int, default=500, help="0 skips LPIPS diversity")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", help="cpu, cuda, mps (default: best available)")
    e.add_argument("--out", help="also write the report: .json or .md")
    e.add_argument("--no-progress", action="store_true")
    return p


def train(args) -> None:
    if args.threads or data_kind(args.data) == "toy":
        torch.set_num_threads(args.threads or 1)
    cfg = TrainConfig(
        data=args.data, method=args.method, steps=args.steps, batch_size=args.batch_size,
        lr=args.lr, seed=args.seed, teacher=args.teacher, data_root=args.data_root,
        warmup_images=args.warmup_images,
        resolution=args.resolution, net=args.net, dropout=args.dropout, N=args.N,
        solver=args.solver, distance=args.distance, s0=args.s0, s1=args.s1,
        mu=args.mu, mu_variant=args.mu_variant, ema_rate=args.ema_rate,
        checkpoint_every=args.checkpoint_every, bf16=not args.no_bf16,
        channels_last=args.channels_last, compile=args.compile, standardize=args.standardize,
    )  # fmt: skip
    try:
        trainer = Trainer(cfg, args.out, device=args.device)
        say = print if trainer.dist.is_main else (lambda *a: None)
        if trainer.step:
            say(f"resuming {args.out} at step {trainer.step} of {trainer.config.steps}")
        state = trainer.run(progress=not args.no_progress)
        if state is not None:
            rate = f" ({state.images_per_second:.0f} images/s)" if trainer.kind == "image" else ""
            done = f"trained {state.step} steps in {state.seconds:.1f} s{rate}"
            say(f"{done}; checkpoint in {args.out}")
    finally:
        distributed.cleanup()


def sample(args) -> None:
    device = default_device(args.device)
    model, _, shape = load_trained(args.checkpoint, device=device)
    if not isinstance(getattr(model, "model", model), ConsistencyModel):  # DataScaled wraps
        raise ValueError(
            f"{args.checkpoint} is a DSM (EDM denoiser) run, not a consistency model; "
            "`sample` needs a cd, ct or ict run"
        )
    eps, T = model.eps, model.T  # in data units (a DataScaled run: s eps, s T)
    if args.times:
        ts = check_times([float(v) for v in args.times.split(",")], eps, T, descending=True)
    else:
        ts = default_times(args.steps, eps, T)
    if len(ts) != args.steps:
        raise ValueError(f"--steps {args.steps} needs {args.steps} time points, got {len(ts)}")
    out, image = Path(args.out), len(shape) == 3
    if out.suffix not in ((".npy", ".png") if image else (".npy",)):
        kinds = "a .npy or .png file" if image else "a .npy file (PNG grids are for images)"
        raise ValueError(f"--out {out}: write {kinds}")
    gen = make_generator(args.seed, device)
    if image:  # Algorithm 1 with every f output clamped to the pixel range [-1, 1]
        sizes = [min(args.batch_size, args.n - i) for i in range(0, args.n, args.batch_size)]
        x = torch.cat([
            sample_model(model, (b, *shape), ts=ts, generator=gen, device=device, clip=(-1, 1))
            for b in sizes
        ])  # fmt: skip
    else:
        x = sample_model(model, (args.n, *shape), ts=ts, generator=gen, device=device)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.suffix == ".png":
        save_image_grid(x, out)
    else:
        np.save(out, x.cpu().numpy())
    print(f"wrote {args.n} samples ({args.steps}-step, times {ts.tolist()}) to {out}")


def evaluate(args) -> None:
    from . import evaluation  # imports torch-fidelity: only for this command

    if args.out and Path(args.out).suffix not in (".json", ".md"):
        raise ValueError(f"--out {args.out}: write a .json or .md report")
    steps = [int(k) for k in args.steps.split(",")]
    times = None
    if args.times:
        times = [check_times([float(v) for v in ts.split(",")], descending=True).tolist()
                 for ts in args.times.split(";")]  # fmt: skip
    report = evaluation.evaluate(
        args.checkpoint, steps=steps, times=times, n=args.n, data=args.data,
        root=args.data_root, n_ref=args.n_ref, lpips_pairs=args.lpips_pairs,
        batch_size=args.batch_size, seed=args.seed, device=default_device(args.device),
        progress=not args.no_progress,
    )  # fmt: skip
    print(evaluation.report_markdown(report))
    if args.out:
        print(f"wrote {evaluation.write_report(report, args.out)}")


def main(argv=None) -> None:
    args = _parser().parse_args(argv)
    try:
        {"train": train, "sample": sample, "evaluate": evaluate}[args.command](args)
    except (ValueError, FileNotFoundError, TrainingDiverged) as err:
        print(f"error: {err}", file=sys.stderr)
        sys.exit(2)
