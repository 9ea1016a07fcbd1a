"""Cost of the input checks on the hot paths: one training step and one sampling call.

Times the model's forward and a loss evaluation alone (where the checks' share is
largest), ``Trainer.train_step`` (toy iCT and CD with the package defaults, and iCT on random
32 x 32 images with the "tiny" U-Net) and ``cmedu.sample`` (toy, 2 steps; images, 1 step)
with ``timeit``, on one CPU thread, and prints the median and the minimum over repeats
in milliseconds. Run it before and after a change to the checks::

    OMP_NUM_THREADS=1 python benchmarks/input_checks.py
"""

from __future__ import annotations

import functools
import statistics
import timeit

import torch

import cmedu
from cmedu.data.images import ImageData


def _time(fn, number: int, repeat: int) -> tuple[float, float]:
    fn()  # warm-up
    times = [t / number * 1e3 for t in timeit.repeat(fn, number=number, repeat=repeat)]
    return statistics.median(times), min(times)


def calls() -> None:
    """The single calls that carry the checks, where their cost is least diluted."""
    torch.manual_seed(0)
    f = cmedu.ConsistencyModel(cmedu.ToyMLP(2))
    x, t = torch.randn(512, 2), torch.rand(512) * 10 + 0.01
    loss = cmedu.ImprovedConsistencyTraining(K=1000)
    gen = torch.Generator().manual_seed(0)
    cases = {
        "model forward, B=512, tensor t (train)": lambda: f(x, t),
        "model forward, B=1, float t (eval)": lambda: f.eval()(x[:1], 1.0),
        "iCT loss forward, B=512 (no backward)": lambda: loss(f.train(), f, x, 10, gen),
    }
    with torch.no_grad():
        for name, fn in cases.items():
            med, low = _time(fn, 200, repeat=15)
            print(f"{name:45s} median {med:8.3f} ms   min {low:8.3f} ms")


def main() -> None:
    torch.set_num_threads(1)
    calls()
    images = ImageData(
        torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8),
        torch.zeros(64, dtype=torch.long),
        ["noise"],
        source="cifar10",
    )
    cases = {
        "toy iCT train step (B=512)": (cmedu.TrainConfig(method="ict", steps=1000), None, 50),
        "toy CD train step (B=512)": (cmedu.TrainConfig(method="cd", steps=1000), None, 20),
        "image iCT train step (tiny U-Net, B=8)": (
            cmedu.TrainConfig(data="cifar10", method="ict", steps=1000, batch_size=8, net="tiny"),
            images,
            3,
        ),
    }
    gen = torch.Generator().manual_seed(0)
    for name, (cfg, data, number) in cases.items():
        trainer = cmedu.Trainer(cfg, device="cpu", data=data)
        med, low = _time(trainer.train_step, number, repeat=7)
        print(f"{name:45s} median {med:8.3f} ms   min {low:8.3f} ms")
        f = trainer.ema.eval()
        shape = (512, *trainer.shape) if data is None else (4, *trainer.shape)
        steps = 2 if data is None else 1
        draw = functools.partial(cmedu.sample, f, shape, steps, generator=gen)
        med, low = _time(draw, number, 7)
        print(
            f"{'  sample ' + str(shape) + f', {steps} steps':45s} median {med:8.3f} ms   "
            f"min {low:8.3f} ms"
        )


if __name__ == "__main__":
    main()
