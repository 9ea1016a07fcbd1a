"""Image throughput: iCT training and 1-step sampling, against the arithmetic floor.

For each U-Net preset, times an iCT training step (target pass, online pass, backward,
RAdam step) and 1-step sampling on random 32x32 images, and compares the training time
with its floor: the step's floating-point operations (counted by
``torch.utils.flop_counter``) divided by the peak rate of a large matmul measured on the
same device and precision.

Usage::

    python benchmarks/image_throughput.py --presets tiny,small --batch 32 --threads 1,2
    python benchmarks/image_throughput.py --device cuda --presets tiny,small,paper \\
        --batch 128 --bf16 --compile            # on a GPU

Prints a markdown table; ``--out FILE.md`` also writes it.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from cmedu import ConsistencyModel, ImprovedConsistencyTraining, autocast, default_device
from cmedu.networks.unet import count_parameters, unet_preset


def peak_flops(device: torch.device, dtype: torch.dtype, n: int = 2048, reps: int = 5) -> float:
    """Achieved FLOP/s of an n x n matmul: the arithmetic ceiling used for the floor."""
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n**3 * reps / (time.perf_counter() - start)


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def measure(preset, batch, device, bf16, compile_, steps):
    torch.manual_seed(0)
    net = unet_preset(preset, img_resolution=32).to(device)
    if device.type == "cuda":
        net = net.to(memory_format=torch.channels_last)
    model = ConsistencyModel(torch.compile(net) if compile_ else net).train()
    loss_fn = ImprovedConsistencyTraining(K=400_000)
    opt = torch.optim.RAdam(model.parameters(), lr=1e-4)
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.rand(batch, 3, 32, 32, device=device, generator=g) * 2 - 1

    def step():
        with autocast(device, bf16):
            out = loss_fn(model, model, x, 0, g)
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        opt.step()

    for _ in range(2):  # warm-up (and compilation)
        step()
    _sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    _sync(device)
    train_s = (time.perf_counter() - start) / steps
    with FlopCounterMode(display=False) as counter:
        step()
    flops = counter.get_total_flops()
    model.eval()
    x_T = 80.0 * torch.randn(batch, 3, 32, 32, device=device, generator=g)
    with torch.no_grad(), autocast(device, bf16):
        model(x_T, 80.0)
        _sync(device)
        start = time.perf_counter()
        for _ in range(steps):
            model(x_T, 80.0)
        _sync(device)
    sample_s = (time.perf_counter() - start) / steps
    return count_parameters(net), train_s, sample_s, flops


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--presets", default="tiny,small")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--threads", default="1,2", help="CPU thread counts to try")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device")
    p.add_argument("--bf16", action="store_true", help="also measure bf16 autocast (CUDA)")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile")
    p.add_argument("--out")
    args = p.parse_args()
    device = default_device(args.device)
    threads = [int(t) for t in args.threads.split(",")] if device.type == "cpu" else [0]
    precisions = [False, True] if args.bf16 else [False]
    compiles = [False, True] if args.compile else [False]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    rows = [
        f"Device: {device} ({name}), torch {torch.__version__}, batch {args.batch}, 32x32, "
        "iCT step.",
        "",
        "| preset | params | threads | precision | compile | train img/s | floor img/s "
        "| of floor | 1-step sampling img/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for n_threads in threads:
        if n_threads:
            torch.set_num_threads(n_threads)
        for bf16 in precisions:
            dtype = torch.bfloat16 if bf16 and device.type == "cuda" else torch.float32
            peak = peak_flops(device, dtype)
            for compile_ in compiles:
                for preset in args.presets.split(","):
                    params, train_s, sample_s, flops = measure(
                        preset, args.batch, device, bf16, compile_, args.steps
                    )
                    floor_s = flops / peak
                    rows.append(
                        f"| {preset} | {params / 1e6:.2f}M | {n_threads or '-'} | "
                        f"{'bf16' if bf16 else 'fp32'} | {'yes' if compile_ else 'no'} | "
                        f"{args.batch / train_s:.1f} | {args.batch / floor_s:.1f} | "
                        f"{floor_s / train_s:.0%} | {args.batch / sample_s:.1f} |"
                    )
                    print(rows[-1], flush=True)
    table = "\n".join(rows)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table + "\n")


if __name__ == "__main__":
    main()
