"""Headless tour (``make demo``): CD and CT on a 2D toy, a figure and a metric table.

Trains consistency distillation (exact-score teacher, Heun) and improved consistency
training on ``8gaussians`` on the CPU (about two minutes), then writes to ``--out``:

* ``demo.png``: the data, PF-ODE trajectories from noise to data, and 1-, 2- and 4-step
  samples of both models;
* ``metrics.md`` / ``metrics.csv``: energy distance to fresh data for each sampler, beside
  the floor (data against data) and the Heun teacher, and the training times.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from ..constants import CD_N  # noqa: E402
from ..metrics import energy_distance, mean_pairwise_distance  # noqa: E402
from ..pfode import karras_timesteps, prior_sample  # noqa: E402
from ..sampling import sample  # noqa: E402
from ..solvers import solve_pf_ode  # noqa: E402
from ..training import TrainConfig, Trainer  # noqa: E402
from .plotting import plot_samples, square  # noqa: E402

STEPS = (1, 2, 4)


def _scatter(ax, x, title, color="C0"):
    plot_samples(ax, x, color=color, s=1, alpha=0.3)
    square(ax, 1.6, title)


def _trajectories(ax, data, g):
    x_T = prior_sample((300, 2), generator=g, dtype=torch.float64)
    path = solve_pf_ode(x_T, data, karras_timesteps(40).flip(0), return_trajectory=True)
    ts = karras_timesteps(40).flip(0).to(path.dtype)
    path = path / (1 + ts**2).sqrt()[:, None, None]  # starts ~ N(0, I), ends at the data
    for i in range(path.shape[1]):
        ax.plot(path[:, i, 0], path[:, i, 1], lw=0.4, alpha=0.5, color="C1")
    ax.scatter(path[-1, :, 0], path[-1, :, 1], s=3, color="C0", label="$x_\\epsilon$")
    ax.set(title="PF-ODE paths, $x_t / \\sqrt{1 + t^2}$", xlim=(-1.6, 1.6), ylim=(-1.6, 1.6))
    ax.set(aspect="equal", xlabel="$x_1$", ylabel="$x_2$")
    ax.legend(loc="upper right")


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="outputs")
    p.add_argument("--data", default="8gaussians")
    p.add_argument("--n", type=int, default=5000, help="samples per energy distance")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--steps", type=int, default=4000, help="training steps of each model")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)

    runs = {}
    for label, method in (("CD (exact score, Heun)", "cd"), ("CT (iCT)", "ict")):
        print(f"training {label} on {args.data} ...", flush=True)
        cfg = TrainConfig(data=args.data, method=method, steps=args.steps)
        trainer = Trainer(cfg, device="cpu")
        runs[label] = (trainer, trainer.run())

    data = trainer.data
    g = torch.Generator().manual_seed(1)
    ref = data.sample(args.n, g)
    yy = mean_pairwise_distance(ref)
    x_T = prior_sample((args.n, 2), generator=g, dtype=torch.float64)
    teacher = solve_pf_ode(x_T, data, karras_timesteps(CD_N).flip(0)).float()
    rows = [
        ("data vs data (floor)", "", "", energy_distance(data.sample(args.n, g), ref, yy)),
        (f"PF-ODE, Heun N={CD_N}", "", 2 * CD_N - 2, energy_distance(teacher, ref, yy)),
    ]
    fig, axes = plt.subplots(3, 4, figsize=(14, 10.5))
    _scatter(axes[0, 0], ref, f"data: {args.data}")
    _trajectories(axes[0, 1], data, g)
    _scatter(axes[0, 2], teacher, f"PF-ODE, Heun N={CD_N} ({2 * CD_N - 2} NFE)")
    axes[0, 3].axis("off")
    for r, (label, (trainer, state)) in enumerate(runs.items(), start=1):
        axes[r, 0].plot(state.losses, lw=0.5)
        axes[r, 0].set(title=f"{label}: loss", xlabel="step", ylabel="loss", yscale="log")
        for c, steps in enumerate(STEPS, start=1):
            x = sample(trainer.ema, (args.n, 2), steps=steps, generator=g)
            ed = energy_distance(x, ref, yy)
            rows.append((label, f"{state.seconds:.0f}", steps, ed))
            _scatter(axes[r, c], x, f"{label}: {steps}-step\nenergy dist. {ed:.1e}", f"C{r + 1}")
    fig.tight_layout()
    fig.savefig(out / "demo.png", dpi=90)

    with open(out / "metrics.csv", "w", newline="") as f:
        csv.writer(f).writerows([("sampler", "train_seconds", "nfe", "energy_distance"), *rows])
    table = ["| sampler | train s | NFE | energy distance |", "|---|---|---|---|"]
    table += [f"| {a} | {b} | {c} | {d:.2e} |" for a, b, c, d in rows]
    (out / "metrics.md").write_text("\n".join(table) + "\n")
    print("\n".join(table))
    print(f"wrote {out / 'demo.png'}, {out / 'metrics.md'}, {out / 'metrics.csv'}")


if __name__ == "__main__":
    main()
