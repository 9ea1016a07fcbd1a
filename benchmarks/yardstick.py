"""The offline yardstick's noise, and a ladder of image models measured with it.

The yardstick is ``cmedu.evaluation.classifier``: FD and KID in the features of the shipped
CIFAR-10 classifier, and its classifier score (none of them FID, KID or IS). This script
measures

* its noise: each measure between real images and real images, over ``--repeats`` random
  splits. The reference is 5,000 test images; against it, n other test images (images the
  classifier never saw, like samples) and n training images (which it was trained on);
* a ladder at n = ``--ladder-n``: held-out test images, training images, Gaussians fitted
  to the training pixels, the shipped consistency models ``cifar10-ict-tiny``,
  ``cifar10-cd-tiny`` and ``cifar10-ect-tiny`` (1, 2, 4 steps), their teacher
  ``cifar10-dsm-tiny`` (one Euler step, Heun at 4 and 10 NFE), and pure noise, each
  against the reference of split 0; with the pixel-space energy distance (the former
  stand-in) beside them.

Usage::

    python benchmarks/yardstick.py --data /work/shared/data/cifar10-jpeg.zip \\
        --out benchmarks/results/yardstick-2026-12-03

Model samples are cached under ``--samples`` (same seed, same samples), so a run can draw
them first (``--only-samples``) and measure later. Writes ``OUT.json`` and ``OUT.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np
import torch

from cmedu import karras_timesteps, load_pretrained, prior_sample, sample, solve_pf_ode
from cmedu.data.images import cached_images, to_model_range, to_uint8
from cmedu.evaluation.classifier import (
    MEASURES,
    NOT_FID,
    classifier_measures,
    classifier_outputs,
    classifier_path,
    load_classifier,
)
from cmedu.evaluation.fid import comparison_times
from cmedu.metrics import energy_distance
from cmedu.runtime.progress import tqdm
from cmedu.training.pretrained import CIFAR10_CD, CIFAR10_DSM, CIFAR10_ECT, CIFAR10_ICT, available

REPO = Path(__file__).resolve().parents[1]
REFERENCE_N = 5000  # reference test images; the other 5,000 are the held-out real images
# The shipped consistency models measured at 1, 2 and 4 steps (when shipped), and the Heun
# grids of the teacher: 4 and 10 NFE (N = 18, 34 NFE, is 3.4 times as long to draw as N = 6)
CONSISTENCY = (CIFAR10_ICT, CIFAR10_CD, CIFAR10_ECT)
CONSISTENCY_STEPS, HEUN_N = (1, 2, 4), (3, 6)


def machine() -> str:
    """The CPU's model name (Linux) or architecture, and the number of CPUs."""
    cpuinfo = Path("/proc/cpuinfo")
    names = [line.split(":", 1)[1].strip() for line in
             (cpuinfo.read_text().splitlines() if cpuinfo.is_file() else [])
             if line.startswith("model name")]  # fmt: skip
    return f"{names[0] if names else platform.machine()}, {os.cpu_count()} CPUs, no GPU"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", required=True, help="CIFAR-10 with train/ and test/ (zip)")
    p.add_argument("--ns", default="1000,5000", help="sample sizes of the noise")
    p.add_argument("--repeats", type=int, default=5, help="random splits per n")
    p.add_argument("--ladder-n", type=int, default=1000)
    p.add_argument("--reference-n", type=int, default=REFERENCE_N, help="reference test images")
    p.add_argument("--heun", default=",".join(map(str, HEUN_N)), help="Heun N of the teacher")
    p.add_argument("--cache", default="outputs/cache", help="decoded images")
    p.add_argument("--samples", default="outputs/yardstick-samples", help="model samples")
    p.add_argument("--only-samples", action="store_true", help="draw and cache, then stop")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=f"benchmarks/results/yardstick-{date.today()}")
    return p.parse_args(argv)


# ----------------------------------------------------------------------------------------
# Samples of the ladder, as uint8 (n, 3, 32, 32)


def in_batches(n: int, draw_batch, desc: str, batch: int = 250) -> torch.Tensor:
    """n images from ``draw_batch(b, generator)`` (floats in [-1, 1]), seeded, as uint8."""
    g = torch.Generator().manual_seed(0)
    out = [to_uint8(draw_batch(min(batch, n - i), g).clamp(-1, 1))
           for i in tqdm(range(0, n, batch), desc=desc, mininterval=30)]  # fmt: skip
    return torch.cat(out)


def cached(path: Path, n: int, draw_batch, desc: str) -> torch.Tensor:
    """``in_batches(n, draw_batch)`` once, kept in ``path``; later calls read it."""
    if path.is_file():
        return torch.load(path, weights_only=True)
    start = time.perf_counter()
    images = in_batches(n, draw_batch, desc)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(images, path)
    print(f"drew {path.name} in {time.perf_counter() - start:.0f} s", flush=True)
    return images


def consistency_draw(model, ts):
    return lambda b, g: sample(model, (b, 3, 32, 32), ts=ts, generator=g)


def ode_draw(denoiser, ts, solver="heun"):
    return lambda b, g: solve_pf_ode(prior_sample((b, 3, 32, 32), float(ts[0]), generator=g),
                                     denoiser, ts, solver=solver)  # fmt: skip


@torch.no_grad()
def model_samples(args, n: int) -> dict[str, torch.Tensor]:
    """The shipped models' samples: each shipped consistency model (``CONSISTENCY``) at 1, 2
    and 4 steps (Algorithm 1, the papers' times where published), and the EDM teacher with
    one Euler step from T (1 NFE: D(x_T, T)) and with Heun's method on the Karras grid."""
    rows, folder = {}, Path(args.samples)
    for name in CONSISTENCY:
        if name not in available():
            continue
        model, info = load_pretrained(name, with_info=True)
        method = info["config"].method
        for k in CONSISTENCY_STEPS:
            ts, why = comparison_times(method, k)
            label = f"{name}, {k} step{'s' * (k > 1)} ({why})"
            path = folder / f"{method}-{k}-n{n}.pt"
            rows[label] = cached(path, n, consistency_draw(model, ts), label)
    dsm = load_pretrained(CIFAR10_DSM)
    label = f"{CIFAR10_DSM}, one Euler step from T (1 NFE)"
    euler = ode_draw(dsm, karras_timesteps(2).flip(0), solver="euler")
    rows[label] = cached(folder / f"dsm-euler-2-n{n}.pt", n, euler, label)
    for N in map(int, args.heun.split(",")):
        label = f"{CIFAR10_DSM}, Heun N = {N} ({2 * N - 2} NFE)"
        draw = ode_draw(dsm, karras_timesteps(N).flip(0))
        rows[label] = cached(folder / f"dsm-heun-{N}-n{n}.pt", n, draw, label)
    return rows


def gaussian_samples(train: torch.Tensor, n: int) -> dict[str, torch.Tensor]:
    """Gaussians fitted to the training pixels in [-1, 1]: the full 3072 x 3072 covariance,
    and per pixel (mean and variance of each of the 3072 values)."""
    x = to_model_range(train).flatten(1).double()
    mu, centred = x.mean(0), x - x.mean(0)
    cov = centred.T @ centred / (len(x) - 1)
    L = torch.linalg.cholesky(cov + 1e-6 * torch.eye(len(mu), dtype=torch.float64))
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, len(mu), generator=g, dtype=torch.float64)
    full = (mu + z @ L.T).float().clamp(-1, 1).view(n, *train.shape[1:])
    z = torch.randn(n, len(mu), generator=g, dtype=torch.float64)
    diag = (mu + z * centred.std(0)).float().clamp(-1, 1).view(n, *train.shape[1:])
    return {
        "Gaussian fitted to the training pixels (full covariance)": to_uint8(full),
        "Gaussian fitted per pixel (mean and variance of each value)": to_uint8(diag),
    }


# ----------------------------------------------------------------------------------------
# Measuring


def splits(n_test: int, repeats: int) -> list[torch.Tensor]:
    """A random permutation of the test images per repeat (seed = repeat index): the first
    ``reference_n`` are the reference, the rest the held-out real images."""
    return [torch.randperm(n_test, generator=torch.Generator().manual_seed(r))
            for r in range(repeats)]  # fmt: skip


def measures(feats, logits, reference) -> dict[str, float]:
    """The three measures, KID over 100 subsets of min(1000, n)."""
    return {k: round(v, 6) for k, v in classifier_measures(feats, logits, reference).items()}


def noise(test_out, train_out, perms, ns, reference_n: int = REFERENCE_N) -> list[dict]:
    """Real vs real: n held-out test images and n training images against the reference."""
    rows = []
    for n in ns:
        for r, perm in enumerate(perms):
            ref = test_out[0][perm[:reference_n]]
            held = perm[reference_n : reference_n + n]
            pick = slice(r * n, (r + 1) * n)  # disjoint training images per repeat
            for kind, (f, lg) in (("test", (test_out[0][held], test_out[1][held])),
                                  ("train", (train_out[0][pick], train_out[1][pick]))):  # fmt: skip
                rows.append({"n": n, "repeat": r, "real": kind, **measures(f, lg, ref)})
            print(f"noise n = {n}, split {r}: {rows[-2]}, {rows[-1]}", flush=True)
    return rows


def ladder(net, rungs: dict, reference, ref_pixels) -> list[dict]:
    """Each rung's measures against the reference features, and its pixel-space energy
    distance to ``ref_pixels`` (as many test images as samples)."""
    rows = []
    for name, images in rungs.items():
        feats, logits = classifier_outputs(net, images)
        px = to_model_range(images).flatten(1)
        ed = energy_distance(px, to_model_range(ref_pixels[: len(px)]).flatten(1))
        rows.append({"samples": name, "n": len(images), **measures(feats, logits, reference),
                     "energy_distance": round(ed, 4)})  # fmt: skip
        print(rows[-1], flush=True)
    return rows


# ----------------------------------------------------------------------------------------
# The report


def spread(rows: list[dict]) -> list[dict]:
    """Per (n, real): mean, std, min and max of each measure over the splits."""
    out = []
    for key in sorted({(r["n"], r["real"]) for r in rows}, key=lambda k: (k[0], k[1] != "test")):
        group = [r for r in rows if (r["n"], r["real"]) == key]
        stats = {m: {f: round(float(getattr(np, f)([r[m] for r in group])), 6)
                     for f in ("mean", "std", "min", "max")}
                 for m in ("fd", "kid", "classifier_score")}  # fmt: skip
        out.append({"n": key[0], "real": key[1], "splits": len(group), **stats})
    return out


def markdown(result: dict) -> str:
    lines = [f"# The offline yardstick: noise and ladder ({result['date']})", "",
             f"Command: `{result['command']}`", "",
             f"Machine: {result['machine']}; torch {result['torch']}, {result['threads']} "
             f"thread(s); {result['seconds'] / 60:.0f} min in all.", "",
             f"Classifier: `{result['classifier']['file']}`, test accuracy "
             f"{result['classifier']['test_accuracy']} on the 10,000 test images. {NOT_FID}", "",
             f"Reference: {result.get('reference_n', REFERENCE_N)} test images of "
             f"{result.get('data_name', 'CIFAR-10 (JPEG copy)')}, drawn at random per split; "
             "KID over 100 subsets of min(1000, n).", "", "## Noise: real vs real", "",
             "| n | real images | splits | " + " | ".join(MEASURES.values()) + " |",
             "|---|---|---|---|---|---|"]  # fmt: skip
    fmt = {"fd": "{:.3f}", "kid": "{:.5f}", "classifier_score": "{:.3f}"}
    for s in result["noise_summary"]:
        cells = [f"{fmt[m].format(s[m]['mean'])} ± {fmt[m].format(s[m]['std'])} "
                 f"[{fmt[m].format(s[m]['min'])}, {fmt[m].format(s[m]['max'])}]"
                 for m in fmt]  # fmt: skip
        real = "held-out test" if s["real"] == "test" else "training (seen)"
        lines.append(f"| {s['n']} | {real} | {s['splits']} | " + " | ".join(cells) + " |")
    lines += ["", "mean ± std [min, max] over the splits.", "",
              f"## Ladder at n = {result['ladder'][0]['n']} (split 0's reference)", "",
              "| samples | " + " | ".join(MEASURES.values()) + " | pixel energy distance |",
              "|---|---|---|---|---|"]  # fmt: skip
    lines_after = ["", "KID: mean ± std over its subsets. Pixel energy distance: unbiased, "
                   "between the samples and as many reference images, pixels in [-1, 1] as "
                   "3072-vectors (the former stand-in; lower is better)."]  # fmt: skip
    for r in result["ladder"]:
        lines.append(f"| {r['samples']} | {r['fd']:.3f} | {r['kid']:.5f} ± {r['kid_std']:.5f} "
                     f"| {r['classifier_score']:.3f} | {r['energy_distance']:.4f} |")  # fmt: skip
    return "\n".join(lines + lines_after) + "\n"


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    start, ns = time.perf_counter(), [int(v) for v in args.ns.split(",")]
    if args.only_samples:
        model_samples(args, args.ladder_n)
        return
    net, meta = load_classifier(with_info=True)
    train = cached_images(args.data, True, args.cache).images
    test_data = cached_images(args.data, False, args.cache)
    test, data_name = test_data.images, test_data.name
    R = args.reference_n
    if len(test) < R + max(ns + [args.ladder_n]):
        raise SystemExit(f"{len(test)} test images: --reference-n {R} leaves fewer held-out "
                         f"images than n = {max(ns + [args.ladder_n])}")  # fmt: skip
    samples = model_samples(args, args.ladder_n)
    pick = torch.randperm(len(train), generator=torch.Generator().manual_seed(100))
    pick = pick[: args.repeats * max(ns)]
    test_out, train_out = classifier_outputs(net, test), classifier_outputs(net, train[pick])
    perms = splits(len(test), args.repeats)
    noise_rows = noise(test_out, train_out, perms, ns, args.reference_n)
    ref, n = perms[0][:R], args.ladder_n
    g = torch.Generator().manual_seed(0)
    rungs = {"real test images (held out)": test[perms[0][R : R + n]],
             "real training images": train[pick[:n]], **gaussian_samples(train, n), **samples,
             "pure noise: N(0, I) clipped to [-1, 1]":
             to_uint8(torch.randn(n, 3, 32, 32, generator=g).clamp(-1, 1))}  # fmt: skip
    result = {
        "command": "python " + " ".join(sys.argv), "date": str(date.today()),
        "machine": machine(),
        "torch": torch.__version__, "threads": args.threads,
        "classifier": {"file": str(classifier_path().relative_to(REPO)),
                       "test_accuracy": meta["test_accuracy"]},
        "reference_n": args.reference_n, "data_name": data_name,
        "noise": noise_rows, "noise_summary": spread(noise_rows),
        "ladder": ladder(net, rungs, test_out[0][ref], test[ref]),
    }  # fmt: skip
    result["seconds"] = round(time.perf_counter() - start, 1)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(f"{args.out}.json").write_text(json.dumps(result, indent=1) + "\n")
    Path(f"{args.out}.md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
