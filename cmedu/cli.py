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
import dataclasses
import json
import math
import sys
from pathlib import Path

import numpy as np
import torch

from .data.images import save_image_grid
from .parameterization import TrigFlowModel
from .pfode import check_times
from .runtime import distributed
from .runtime.device import default_device, make_generator
from .sampling import sample as sample_model
from .sampling import times_for
from .training import TrainConfig, Trainer, TrainingDiverged, data_kind, load_trained
from .training.budget import steps_for_minutes
from .training.checkpoint import has_checkpoint, saved_config
from .training.config import field_problem
from .training.pretrained import CIFAR10_CLASSIFIER as CLASSIFIER
from .training.runs import require_consistency_model


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m cmedu", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)
    _train_options(sub.add_parser("train", help="train a consistency model (or a DSM teacher)"))
    _sample_options(sub.add_parser("sample", help="draw samples from a trained consistency model"))
    _evaluate_options(
        sub.add_parser("evaluate", help="FID, Inception Score and LPIPS diversity of samples")
    )
    return p


def _train_options(t: argparse.ArgumentParser) -> None:
    for f in dataclasses.fields(TrainConfig):  # one option per field, from its metadata
        if f.metadata["cli"]:
            t.add_argument(_flag(f.name), **_config_option(f))
    t.add_argument("--minutes", type=positive_float, help="size the run to this wall time: "
                   "--steps from the measured time of a step (not with --steps)")  # fmt: skip
    t.add_argument("--out", required=True, help="run directory (resumes if it has a checkpoint)")
    t.add_argument("--device", help="cpu, cuda, mps (default: best available)")
    t.add_argument("--threads", type=count(1), help="CPU threads (default: 1 for toys, measured)")
    t.add_argument("--no-progress", action="store_true")


def _sample_options(s: argparse.ArgumentParser) -> None:
    s.add_argument(
        "--checkpoint", required=True, help="run directory, or a shipped checkpoint (name or path)"
    )
    s.add_argument("--n", type=count(1), required=True, help="number of samples")
    s.add_argument("--steps", type=count(1), default=1, help="sampling steps (NFE), Algorithm 1")
    s.add_argument("--times", help="comma-separated time points T,tau_1,... (default: Karras)")
    s.add_argument("--seed", type=count(0), default=0)
    s.add_argument("--device")
    s.add_argument("--batch-size", type=count(1), default=256, help="images drawn at a time")
    s.add_argument(
        "--out", required=True,
        help="output .npy (toys: (n, 2); images: (n, C, H, W) in [-1, 1]) or, for images, .png",
    )  # fmt: skip


def _evaluate_options(e: argparse.ArgumentParser) -> None:
    e.add_argument(
        "--checkpoint", required=True,
        help="run directory, or a shipped checkpoint: a name under checkpoints/ or a path",
    )  # fmt: skip
    e.add_argument(
        "--steps", type=counts(1), default="1,2", help="comma-separated step counts (default 1,2)"
    )
    e.add_argument(
        "--times",
        help="time points per step count, ';' between counts, e.g. '80;80,0.821' (overrides "
        "--steps; default: the papers' two-step tau_1 where published, iCT 0.821 and CD "
        "0.5853, else the Karras grid; the report says which)",
    )
    e.add_argument(
        "--n", type=count(2), default=50_000,
        help="samples per step count (papers: 50000; fewer bias FID upward; the report says n)",
    )  # fmt: skip
    e.add_argument("--batch-size", type=count(1), default=250)
    e.add_argument(
        "--data", default="cifar10",
        help="reference training set: 'cifar10' (official, downloaded) or an image folder / .zip",
    )  # fmt: skip
    e.add_argument("--data-root", help="cifar10: folder that holds or receives the download")
    e.add_argument(
        "--n-ref", type=count(2), help="reference images (default: the whole train split)"
    )
    e.add_argument("--lpips-pairs", type=count(0), default=500, help="0 skips LPIPS diversity")
    e.add_argument(
        "--classifier", default=CLASSIFIER,
        help="the classifier of the FD, KID and classifier score in its features, always "
        f"reported (not FID): a name under checkpoints/ or a path (default {CLASSIFIER})",
    )  # fmt: skip
    e.add_argument("--seed", type=count(0), default=0)
    e.add_argument("--device", help="cpu, cuda, mps (default: best available)")
    e.add_argument("--out", help="also write the report: .json or .md")
    e.add_argument("--no-progress", action="store_true")


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _config_option(f: dataclasses.Field) -> dict:
    """argparse keywords of the ``TrainConfig`` field ``f``: type, range, choices and help
    all come from the field (``cmedu.training.config.option``)."""
    meta, kind = f.metadata, str(f.type)
    kw = dict(help=meta["help"], default=f.default, required=meta["required"])
    if kind.startswith("bool"):
        return {**kw, "action": argparse.BooleanOptionalAction}
    if kind.startswith("dict"):
        return {**kw, "type": json_object}
    if meta["choices"] is not None:
        return {**kw, "choices": meta["choices"]}
    number = int if kind.startswith("int") else float if kind.startswith("float") else None
    if number is None:
        return kw
    return {**kw, "type": in_range(number, f), "metavar": number.__name__.upper()}


def in_range(number: type, field: dataclasses.Field):
    """An argparse type: ``number`` within the field's range, else a message naming it."""

    def parse(text: str):
        try:
            value = number(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {number.__name__}, got {text!r}") from None
        problem = field_problem(field, value)
        if problem:
            raise argparse.ArgumentTypeError(problem)
        return value

    return parse


def count(minimum: int):
    """An argparse type: an integer >= ``minimum`` (a count of samples, steps, ...)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {value}")
        return value

    return parse


def positive_float(text: str) -> float:
    """An argparse type: a number > 0 (minutes of a budget)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number > 0, got {text}")
    return value


def counts(minimum: int):
    """An argparse type: comma-separated integers >= ``minimum``, e.g. "1,2"."""
    one = count(minimum)
    return lambda text: [one(v) for v in text.split(",")]


def json_object(text: str) -> dict:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}: {err}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def train(args) -> None:
    if args.threads or data_kind(args.data) == "toy":
        torch.set_num_threads(args.threads or 1)
    fields = [f for f in dataclasses.fields(TrainConfig) if f.metadata["cli"]]
    cfg = TrainConfig(**{f.name: getattr(args, f.name) for f in fields})
    try:
        if args.minutes is not None:
            cfg.steps = _sized(cfg, args)
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


def _sized(cfg: TrainConfig, args) -> int:
    """--minutes: K from the measured step time (``training.budget``); a resumed run keeps
    the K it was started with."""
    if args.steps is not None:
        raise SystemExit("train: give --steps or --minutes, not both")
    if has_checkpoint(args.out):
        return saved_config(args.out)["steps"]
    budget = steps_for_minutes(cfg, args.minutes, device=args.device)
    print(f"sized the run to {budget}")
    return budget.steps


def sample(args) -> None:
    device = default_device(args.device)
    model, _, shape = load_trained(args.checkpoint, device=device)
    require_consistency_model(model, args.checkpoint, "sample")
    eps, T = model.eps, model.T  # in data units (a DataScaled run: s eps, s T)
    if args.times:  # sCM: TrigFlow times in (0, pi/2]; MeanFlow: t in (0, 1], ending at 0
        hi = math.pi / 2 if isinstance(model, TrigFlowModel) else T
        ts = check_times([float(v) for v in args.times.split(",")], eps, hi, descending=True)
    else:
        ts = times_for(model, args.steps)
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

    if args.out:
        evaluation.check_report_path(args.out)
    steps = args.steps
    times = None
    if args.times:
        times = [check_times([float(v) for v in ts.split(",")], descending=True).tolist()
                 for ts in args.times.split(";")]  # fmt: skip
    report = evaluation.evaluate(
        args.checkpoint, steps=steps, times=times, n=args.n, data=args.data,
        root=args.data_root, n_ref=args.n_ref, lpips_pairs=args.lpips_pairs,
        batch_size=args.batch_size, seed=args.seed, device=default_device(args.device),
        progress=not args.no_progress, classifier=args.classifier,
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
