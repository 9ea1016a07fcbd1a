"""Candidate image models measured with the offline yardstick, exactly as the shipped ones.

A recipe is chosen, and a checkpoint shipped, on the numbers of this script: each candidate
(a run directory, a shipped checkpoint's name, or a snapshot of a run kept as a run
directory) draws n samples per step count with Algorithm 1 (Song et al. 2023) at the papers'
times where they are published (``comparison_times``), seed 0, in batches of 250, exactly as
``benchmarks/yardstick.py`` draws its ladder. So a shipped model measured here reads the
same FD as in the ladder. Each is measured twice in cmedu-classifier features:

* against **training images** (5,000, drawn with seed 100): the number to choose by, so that
  the test images choose nothing;
* against the ladder's **test reference** (split 0's 5,000 test images): the number to
  report, beside the floor at the same n (n held-out test images against that reference).

Usage::

    python benchmarks/candidates.py --data ../shared/data/cifar10-jpeg.zip \\
        --models cifar10-ict-tiny runs/ict-6000 --steps 1,2,4 \\
        --out benchmarks/results/candidates-2026-12-02

Writes ``OUT.json`` and ``OUT.md``. These numbers are not FID, KID or IS.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date
from pathlib import Path

import torch

from cmedu.data.images import cached_images
from cmedu.evaluation.classifier import MEASURES, NOT_FID, classifier_outputs, load_classifier
from cmedu.evaluation.fid import comparison_times
from cmedu.training.checkpoint import has_checkpoint, load_checkpoint
from cmedu.training.pretrained import load_pretrained
from cmedu.training.runs import load_trained, require_consistency_model

sys.path.insert(0, str(Path(__file__).resolve().parent))
from yardstick import (  # noqa: E402
    REFERENCE_N,
    consistency_draw,
    in_batches,
    machine,
    measures,
    splits,
)

TRAIN_REFERENCE_SEED = 100  # the ladder's draw of training images


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="CIFAR-10 with train/ and test/ (zip)")
    p.add_argument("--models", nargs="+", required=True,
                   help="run directories or shipped checkpoints' names")  # fmt: skip
    p.add_argument("--steps", default="1,2,4", help="sampling steps per model")
    p.add_argument("--n", type=int, default=1000, help="samples per model and step count")
    p.add_argument("--reference-n", type=int, default=REFERENCE_N, help="reference images")
    p.add_argument("--cache", default="outputs/cache", help="decoded images")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=f"benchmarks/results/candidates-{date.today()}")
    return p.parse_args(argv)


def describe(spec: str) -> dict:
    """What a candidate is: its method, steps trained and images seen (steps x batch)."""
    if has_checkpoint(spec):
        state, config = load_checkpoint(spec)
        step, batch, method = int(state.get("step", 0)), config["batch_size"], config["method"]
        source = "run"
    else:
        _, info = load_pretrained(spec, with_info=True)
        step, batch = int(info["step"]), info["config"].batch_size
        method, source = info["config"].method, "shipped"
    return {"model": Path(spec).name, "source": source, "method": method, "trained_steps": step,
            "images_seen": step * batch}  # fmt: skip


@torch.no_grad()
def measure(net, spec: str, steps: list[int], n: int, refs: dict) -> list[dict]:
    """One row per step count: the candidate's measures against each reference."""
    model, cfg, shape = load_trained(spec)
    require_consistency_model(model, spec, "benchmarks/candidates.py")
    if tuple(shape) != (3, 32, 32):
        raise SystemExit(f"{spec}: a model of {tuple(shape)} images, the yardstick needs 3x32x32")
    about, rows = describe(spec), []
    for k in steps:
        ts, why = comparison_times(cfg.method, k)
        start = time.perf_counter()
        images = in_batches(n, consistency_draw(model, ts), f"{about['model']}, {k} steps")
        seconds = time.perf_counter() - start
        feats, logits = classifier_outputs(net, images)
        rows.append({**about, "sampling_steps": k, "times": why, "n": n,
                     "sampling_seconds": round(seconds, 1),
                     **{ref: measures(feats, logits, r) for ref, r in refs.items()}})  # fmt: skip
        print(json.dumps(rows[-1]), flush=True)
    return rows


def markdown(result: dict) -> str:
    floor = result["floor"]
    lines = [f"# Candidate image models on the offline yardstick ({result['date']})", "",
             f"Command: `{result['command']}`", "",
             f"Machine: {result['machine']}; torch {result['torch']}, {result['threads']} "
             f"thread(s); {result['seconds'] / 60:.0f} min in all.", "",
             f"{NOT_FID} Samples: n = {result['n']} per row, seed 0, as in "
             "`benchmarks/yardstick.py`'s ladder. Against training images: FD to choose by "
             f"({result['reference_n']} training images). Against test images: the numbers "
             f"to report ({result['reference_n']} test images, the ladder's split 0); n "
             f"held-out test images read FD {floor['fd']:.3f} against them (the floor at "
             "this n; over 5 splits the yardstick's noise table gives its spread).", "",
             f"## Measures at n = {result['n']}", "",
             "| model | method | trained steps (images) | sampling | FD vs training "
             f"| {MEASURES['fd']} | {MEASURES['kid']} | {MEASURES['classifier_score']} "
             "| sampling s |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in result["rows"]:
        test = r["test"]
        lines.append(
            f"| {r['model']} ({r['source']}) | {r['method']} | {r['trained_steps']:,} "
            f"({r['images_seen']:,}) | {r['sampling_steps']}: {r['times']} "
            f"| {r['train']['fd']:.3f} | {test['fd']:.3f} "
            f"| {test['kid']:.5f} ± {test['kid_std']:.5f} | {test['classifier_score']:.3f} "
            f"| {r['sampling_seconds']:.0f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start, steps = time.perf_counter(), [int(k) for k in args.steps.split(",")]
    net, _ = load_classifier(with_info=True)
    train = cached_images(args.data, True, args.cache).images
    test = cached_images(args.data, False, args.cache).images
    R, n = args.reference_n, args.n
    if len(test) < R + n or len(train) < R:
        raise SystemExit(f"{len(test)} test and {len(train)} training images: --reference-n "
                         f"{R} and --n {n} need {R + n} and {R}")  # fmt: skip
    perm = splits(len(test), 1)[0]
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(TRAIN_REFERENCE_SEED))
    refs = {"train": classifier_outputs(net, train[pick[:R]])[0],
            "test": classifier_outputs(net, test[perm[:R]])[0]}  # fmt: skip
    held = classifier_outputs(net, test[perm[R : R + n]])
    rows = [row for spec in args.models for row in measure(net, spec, steps, n, refs)]
    floor = measures(*held, refs["test"])
    result = {"command": "python " + " ".join(sys.argv), "date": str(date.today()),
              "machine": machine(), "torch": torch.__version__, "threads": args.threads,
              "n": n, "reference_n": R, "floor": floor, "rows": rows}  # fmt: skip
    result["seconds"] = round(time.perf_counter() - start, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=1) + "\n")
    Path(f"{args.out}.md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
