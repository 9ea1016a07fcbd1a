"""Train the CIFAR-10 classifier behind cmedu's offline yardstick, on the CPU.

    python scripts/train_classifier.py --data /work/shared/data/cifar10-jpeg.zip \
        --out outputs/classifier --export checkpoints/cifar10-classifier

The recipe (after Page's ResNet-9 and Jordan's airbench, see cmedu.networks.classifier):
random crops (reflect-padded by 2) and horizontal flips, label smoothing 0.2, SGD with
Nesterov momentum and weight decay, a one-cycle learning rate (linear warm-up, linear
decay to zero), bfloat16 autocast and channels-last on the CPU, one torch thread. The
exported classifier averages its features over each image and its mirror image (``--mirror``,
on by default; ``CifarClassifier(mirror=True)``), the flip test-time augmentation of airbench.

The JPEGs are decoded once into a uint8 tensor file under ``--cache``. The run saves its
state atomically after every epoch into ``--out`` and resumes from it when started again
with the same arguments. At the end it measures the test accuracy of the float16 weights
that it exports (the weights that ship), with and without the mirror average, and writes
them with their recipe and numbers.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import date
from pathlib import Path

import torch
import torch.nn.functional as F

from cmedu.data.images import cached_images, to_model_range
from cmedu.evaluation.classifier import export_classifier, load_classifier
from cmedu.networks.classifier import CLASSIFIER_WIDTHS, CifarClassifier
from cmedu.runtime.progress import tqdm
from cmedu.training.checkpoint import atomic_write

STATE = "classifier-state.pt"


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=os.environ.get("CMEDU_CIFAR10_JPEG"), help="CIFAR-10 zip")
    p.add_argument("--out", default="outputs/classifier", help="run folder (state, resume)")
    p.add_argument("--cache", default="outputs/cache", help="decoded uint8 tensors")
    p.add_argument("--export", default=None, help="folder to write classifier.pt into")
    p.add_argument("--epochs", type=int, default=15)
    p.add_argument("--batch", type=int, default=256)
    p.add_argument("--lr", type=float, default=0.2, help="peak learning rate")
    p.add_argument("--warmup", type=float, default=0.2, help="fraction of steps warming up")
    p.add_argument("--wd", type=float, default=5e-4, help="weight decay")
    p.add_argument("--smoothing", type=float, default=0.2, help="label smoothing")
    p.add_argument("--widths", type=int, nargs="+", default=list(CLASSIFIER_WIDTHS))
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stop-after", type=int, default=None, help="stop after this epoch")
    p.add_argument("--mirror", action=argparse.BooleanOptionalAction, default=True,
                   help="export features averaged over the image and its mirror image")  # fmt: skip
    return p.parse_args(argv)


def augment(padded: torch.Tensor, idx: torch.Tensor, g: torch.Generator, size: int = 32):
    """Random crops of ``size`` from the reflect-padded uint8 images ``padded[idx]``, each
    mirrored left-right with probability 1/2, in [-1, 1]."""
    n, pad = len(idx), (padded.shape[-1] - size) // 2
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n), generator=g)
    rows = (dy[:, None] + torch.arange(size))[:, None, :, None]
    cols = (dx[:, None] + torch.arange(size))[:, None, None, :]
    flip = torch.rand(n, generator=g) < 0.5
    cols = torch.where(flip[:, None, None, None], cols.flip(-1), cols)
    x = padded[idx[:, None, None, None], torch.arange(3)[None, :, None, None], rows, cols]
    return to_model_range(x).contiguous(memory_format=torch.channels_last)


def learning_rate(step: int, total: int, args) -> float:
    """One cycle: linear from lr/10 to lr over the warm-up, then linearly down to zero."""
    rise = max(1, int(args.warmup * total))
    if step < rise:
        return args.lr * (0.1 + 0.9 * step / rise)
    return args.lr * (total - step) / max(1, total - rise)


@torch.no_grad()
def accuracy(net: CifarClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    """Top-1 accuracy in float32, eval mode, 500 images at a time."""
    net.eval()
    right = 0
    for x, y in zip(images.split(500), labels.split(500)):
        right += (net(to_model_range(x)).argmax(1) == y).sum().item()
    return right / len(labels)


def resume_or_start(args, net, opt) -> dict:
    """The saved progress in ``args.out`` (loaded into net and opt), or a fresh one."""
    path = Path(args.out) / STATE
    if not path.is_file():
        return {"epoch": 0, "wall_s": 0.0, "cpu_s": 0.0, "history": [], "rng": None,
                "schedules": [{"from_epoch": 0, "epochs": args.epochs}]}  # fmt: skip
    state = torch.load(path, weights_only=False)
    net.load_state_dict(state["net"])
    opt.load_state_dict(state["opt"])
    progress = state["progress"]
    print(f"resuming from {path} after epoch {progress['epoch']}")
    progress.setdefault("schedules", [{"from_epoch": 0, "epochs": state["args"]["epochs"]}])
    if progress["schedules"][-1]["epochs"] != args.epochs:  # the lr schedule is recomputed
        progress["schedules"].append({"from_epoch": progress["epoch"], "epochs": args.epochs})
    return progress


def save(args, net, opt, progress: dict) -> None:
    state = {"net": net.state_dict(), "opt": opt.state_dict(), "progress": progress,
             "args": vars(args)}  # fmt: skip
    atomic_write(Path(args.out) / STATE, lambda f: torch.save(state, f))


def train_epoch(net, opt, padded, labels, g, step0: int, total: int, args) -> dict:
    """One pass over the shuffled training set; returns mean loss and accuracy."""
    net.train()
    order = torch.randperm(len(labels), generator=g)
    batches = order[: len(order) // args.batch * args.batch].view(-1, args.batch)
    loss_sum = right = 0.0
    for i, idx in enumerate(tqdm(batches, desc="batches", leave=False, mininterval=30)):
        for group in opt.param_groups:
            group["lr"] = learning_rate(step0 + i, total, args)
        x, y = augment(padded, idx, g), labels[idx]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = net(x).float()
        loss = F.cross_entropy(logits, y, label_smoothing=args.smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        loss_sum += loss.item()
        right += (logits.argmax(1) == y).sum().item()
    return {"loss": loss_sum / len(batches), "train_acc": right / batches.numel()}


def export(args, net, progress: dict, test) -> None:
    """Write the float16 weights (``mirror`` as ``args.mirror``), then measure the test
    accuracy of what was written, with and without the mirror average."""
    net.mirror = args.mirror
    meta = {"recipe": vars(args), "schedules": progress["schedules"], "cpu_s": round(
            progress["cpu_s"], 1), "epochs": progress["epoch"], "images_seen":
            progress["images_seen"], "wall_s": round(progress["wall_s"], 1),
            "threads": torch.get_num_threads(), "machine": platform.processor() or
            platform.machine(), "torch": torch.__version__, "date": str(date.today()),
            "data": "CIFAR-10 (JPEG copy), train split (50,000 images)"}  # fmt: skip
    path = export_classifier(net, args.export, meta)
    shipped = load_classifier(path)
    meta["test_accuracy"] = accuracy(shipped, test.images, test.labels)
    shipped.mirror = not shipped.mirror
    meta["test_accuracy_" + ("one_view" if args.mirror else "mirror_average")] = accuracy(
        shipped, test.images, test.labels
    )
    meta["test_images"] = len(test)
    export_classifier(net, args.export, meta)
    print(f"wrote {path}: test accuracy {meta['test_accuracy']:.4f} of the float16 weights "
          f"(mirror average: {args.mirror})")  # fmt: skip


def main(argv=None) -> None:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train = cached_images(args.data, train=True, cache=args.cache)
    test = cached_images(args.data, train=False, cache=args.cache)
    padded = F.pad(train.images, (2, 2, 2, 2), mode="reflect")
    net = CifarClassifier(tuple(args.widths)).to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(net.parameters(), lr=args.lr, momentum=0.9, nesterov=True,
                          weight_decay=args.wd)  # fmt: skip
    progress = resume_or_start(args, net, opt)
    g = torch.Generator().manual_seed(args.seed)
    if progress["rng"] is not None:
        g.set_state(progress["rng"])
    steps_per_epoch, total = len(train) // args.batch, len(train) // args.batch * args.epochs
    for epoch in range(progress["epoch"], args.epochs):
        if args.stop_after is not None and epoch >= args.stop_after:
            return
        start, cpu = time.time(), time.process_time()
        stats = train_epoch(net, opt, padded, train.labels, g, epoch * steps_per_epoch, total,
                            args)  # fmt: skip
        progress["wall_s"] += time.time() - start
        progress["cpu_s"] = progress.get("cpu_s") or 0.0  # older states lack it
        progress["cpu_s"] += time.process_time() - cpu
        progress.update(epoch=epoch + 1, rng=g.get_state(),
                        images_seen=(epoch + 1) * steps_per_epoch * args.batch)  # fmt: skip
        progress["history"].append({"epoch": epoch + 1, **stats, "wall_s": progress["wall_s"]})
        save(args, net, opt, progress)
        minutes = progress["wall_s"] / 60
        print(f"epoch {epoch + 1}/{args.epochs}: loss {stats['loss']:.3f}, train acc "
              f"{stats['train_acc']:.3f}, {minutes:.1f} min", flush=True)  # fmt: skip
    print(f"test accuracy (float32 weights): {accuracy(net, test.images, test.labels):.4f}")
    if args.export:
        export(args, net, progress, test)


if __name__ == "__main__":
    main()
