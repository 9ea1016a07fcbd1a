"""Figure helpers shared by the notebook course (2D toys).

Each function draws one kind of figure the notebooks use again and again: density
heatmaps of p_t, score fields, PF-ODE trajectories, sample scatters, loss curves and
convergence plots. They take plain tensors or arrays (shape (B, 2) for points,
(steps, B, 2) for paths) and a matplotlib Axes, and return what they drew.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from torch import Tensor

from ..metrics import energy_distance, mixture_scores

DATA_COLOR = "0.55"  # grey for reference data samples
SAMPLE_COLOR = "tab:blue"
OFF_SUPPORT_COLOR = "tab:red"  # samples below the data's 1% log-density quantile
PALETTE = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]


def use_course_style(dpi: int = 100) -> None:
    """PNG figures at 100 dpi with grids: readable on screen, small in the stored notebooks."""
    plt.rcParams.update(
        {
            "figure.dpi": dpi,
            "savefig.dpi": dpi,
            "figure.figsize": (6.0, 4.0),
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.titlesize": "medium",
            "legend.fontsize": "small",
            "image.cmap": "magma",
            "animation.embed_limit": 4.0,  # MB, for the few small animations
        }
    )
    try:  # PNG only: the inline backend's default, set explicitly for small outputs
        from IPython import get_ipython

        ip = get_ipython()
        if ip is not None:
            ip.run_line_magic("config", "InlineBackend.figure_formats = ['png']")
    except Exception:  # not in IPython, or no inline backend
        pass


def _np(x) -> np.ndarray:
    return x.detach().cpu().double().numpy() if isinstance(x, Tensor) else np.asarray(x)


def grid_points(lim: float, n: int) -> tuple[Tensor, np.ndarray, np.ndarray]:
    """An n x n grid on [-lim, lim]^2: points of shape (n*n, 2) (float64) and the meshes."""
    g = torch.linspace(-lim, lim, n, dtype=torch.float64)
    X, Y = torch.meshgrid(g, g, indexing="xy")
    return torch.stack([X.reshape(-1), Y.reshape(-1)], 1), X.numpy(), Y.numpy()


def view_limit(t: float, base: float = 1.6) -> float:
    """Half-width of a window that holds most of p_t for the [-1, 1]-scaled toys."""
    return base + 2.5 * float(t)


def density_levels(logp: np.ndarray, n: int = 14, depth: float = 12.0) -> np.ndarray:
    """Contour levels for a log density: ``n`` levels from max - ``depth`` to the max."""
    top = float(logp.max())
    return np.linspace(top - depth, top, n + 1)


def plot_density(ax, mixture, t: float, lim: float | None = None, n: int = 100, levels=14):
    """Filled contours of log p_t, p_t = p_data * N(0, t^2 I), on [-lim, lim]^2.

    Contours (rather than a pixel image) keep the stored PNGs small and show level sets;
    the far tails below max - 12 are cut off so the colour scale shows the modes.
    """
    lim = view_limit(t) if lim is None else lim
    pts, X, Y = grid_points(lim, n)
    with torch.no_grad():
        logp = mixture.log_prob(pts, t).reshape(n, n).numpy()
    lv = density_levels(logp, levels)
    cs = ax.contourf(X, Y, np.maximum(logp, lv[0]), levels=lv, cmap="magma")
    ax.set(xlabel="$x_1$", ylabel="$x_2$", xlim=(-lim, lim), ylim=(-lim, lim), aspect="equal")
    ax.grid(False)
    return cs


def plot_score_field(
    ax, score: Callable[[Tensor, float], Tensor], t: float, lim=None, n=15, color="w", **kw
):
    """Quiver of a score field s(x, t) on an n x n grid; arrows scaled by t (= -t s, the
    PF-ODE velocity up to sign) so that every t shows arrows of comparable length."""
    lim = view_limit(t) if lim is None else lim
    pts, X, Y = grid_points(lim, n)
    with torch.no_grad():
        v = _np(score(pts, t)) * float(t)
    U, V = v[:, 0].reshape(n, n), v[:, 1].reshape(n, n)
    return ax.quiver(X, Y, U, V, color=color, angles="xy", **kw)


def plot_samples(ax, x, label=None, color=SAMPLE_COLOR, s=2, alpha=0.5, **kw):
    """Scatter of points x, shape (B, 2)."""
    x = _np(x)
    return ax.scatter(x[:, 0], x[:, 1], s=s, alpha=alpha, color=color, label=label, lw=0, **kw)


def plot_trajectories(ax, paths, color="tab:blue", label=None, lw=0.8, alpha=0.7, ends=True):
    """Lines of paths, shape (steps, B, 2); start marked with a circle, end with a dot."""
    p = _np(paths)
    for b in range(p.shape[1]):
        ax.plot(
            p[:, b, 0], p[:, b, 1], color=color, lw=lw, alpha=alpha, label=label if b == 0 else None
        )
    if ends:
        ax.scatter(p[0, :, 0], p[0, :, 1], s=12, facecolors="none", edgecolors=color, lw=0.8)
        ax.scatter(p[-1, :, 0], p[-1, :, 1], s=10, color=color)
    return ax


def square(ax, lim: float = 1.6, title=None):
    """Equal aspect, symmetric limits, labelled axes."""
    ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="$x_1$", ylabel="$x_2$", aspect="equal")
    if title:
        ax.set_title(title)
    return ax


def sample_panels(
    samples: dict,
    reference=None,
    lim=1.6,
    size=2.6,
    scores: dict | None = None,
    mixture=None,
    threshold: float | None = None,
    suptitle: str | None = None,
):
    """One scatter panel per entry of ``samples`` (title -> (B, 2) points), reference data in
    grey behind; ``scores`` (title -> number, the energy distance) is appended to each title.

    With a ``GaussianMixture`` ``mixture`` and a log-density ``threshold``
    (``cmedu.metrics.log_density_threshold``), the samples below it (off the data's support:
    bridges between modes, a diffuse cloud) are drawn in red and their fraction (1 -
    precision) joins the title. ``suptitle`` is a title above all panels.
    """
    fig, axes = plt.subplots(1, len(samples), figsize=(size * len(samples), size + 0.3))
    axes = np.atleast_1d(axes)
    for ax, (title, x) in zip(axes, samples.items()):
        if reference is not None:
            plot_samples(ax, reference, color=DATA_COLOR, alpha=0.3, label="data")
        lines = [title]
        if scores is not None and title in scores:
            lines.append(f"energy dist. {scores[title]:.4f}")
        if mixture is not None:
            fraction = plot_off_support(ax, x, mixture, threshold)
            lines.append(f"off-support {100 * fraction:.1f}%")
        else:
            plot_samples(ax, x, label="samples")
        square(ax, lim, "\n".join(lines))
        ax.set_ylabel("$x_2$" if ax is axes[0] else "")
    handles, labels = axes[0].get_legend_handles_labels()  # one legend below, off the data
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), markerscale=4, frameon=False)
    if suptitle:
        fig.suptitle(suptitle)
    fig.tight_layout(rect=(0, 0.1, 1, 1))  # makes room for the suptitle too
    return fig, axes


def plot_off_support(ax, x, mixture, threshold: float, s=2, alpha=0.5) -> float:
    """Scatter of samples x (B, 2): those with log p_data(x) below ``threshold`` in red, the
    others in blue. Returns the red fraction (``cmedu.metrics.off_support_fraction``)."""
    off = (mixture.log_prob(torch.as_tensor(_np(x))) < threshold).numpy()
    plot_samples(ax, _np(x)[~off], label="samples", s=s, alpha=alpha)
    plot_samples(ax, _np(x)[off], label="off-support", color=OFF_SUPPORT_COLOR, s=s + 1,
                 alpha=min(1.0, 2 * alpha))  # fmt: skip
    return float(off.mean())


# --- Exact measures of toy samples, with their noise -----------------------------------------

MEASURES = {"energy": "energy dist.", "off_support": "off-support", "mode_tv": "mode TV"}


def toy_scores(x, mixture, reference, threshold: float) -> dict[str, float]:
    """Energy distance of samples x (n, d) to ``reference`` data, and the exact
    ``off_support`` (1 - precision) and ``mode_tv`` (1 - recall) of ``cmedu.metrics``."""
    x = torch.as_tensor(_np(x))
    return {
        "energy": energy_distance(x, torch.as_tensor(_np(reference))),
        **mixture_scores(x, mixture, threshold),
    }


def seed_scores(draw: Callable[[int], Tensor], mixture, reference, threshold, seeds=(0, 1, 2)):
    """``toy_scores`` of ``draw(seed)`` for each seed: measure -> (mean, sd over the seeds).

    The sd is the measure's noise at this sample size (the sampler's and the estimator's
    randomness together): a difference between two rows smaller than about twice it is
    not resolved.
    """
    runs = [toy_scores(draw(seed), mixture, reference, threshold) for seed in seeds]
    return {
        key: (float(np.mean([r[key] for r in runs])), float(np.std([r[key] for r in runs], ddof=1)))
        for key in MEASURES
    }


def score_table(rows: dict) -> str:
    """Rows of ``seed_scores`` (name -> measure -> (mean, sd)) as an aligned text table:
    energy distance, off-support fraction and mode TV, each as mean ± sd over seeds."""
    width = max(len(name) for name in rows) + 2
    head = "".join(f"{label:>20s}" for label in MEASURES.values())
    lines = [f"{'':{width}s}{head}"]
    for name, row in rows.items():
        cells = [
            f"{row['energy'][0]:.4f} ± {row['energy'][1]:.4f}",
            f"{100 * row['off_support'][0]:.1f}% ± {100 * row['off_support'][1]:.1f}",
            f"{row['mode_tv'][0]:.3f} ± {row['mode_tv'][1]:.3f}",
        ]
        lines.append(f"{name:{width}s}" + "".join(f"{c:>20s}" for c in cells))
    return "\n".join(lines)


def moving_average(y: Sequence[float], window: int) -> np.ndarray:
    """Trailing moving average, as long as y (shorter windows at the start)."""
    y = np.asarray(y, dtype=float)
    c = np.cumsum(np.insert(y, 0, 0.0))
    i = np.arange(1, len(y) + 1)
    lo = np.maximum(i - window, 0)
    return (c[i] - c[lo]) / (i - lo)


def plot_loss_curves(ax, curves: dict, window: int = 50, logy=True):
    """Training losses (label -> list of per-step losses), raw faint and smoothed bold."""
    for (label, losses), color in zip(curves.items(), PALETTE):
        steps = np.arange(1, len(losses) + 1)
        ax.plot(steps, losses, color=color, alpha=0.2, lw=0.5)
        ax.plot(steps, moving_average(losses, window), color=color, label=label)
    ax.set(xlabel="training step $k$", ylabel="loss", title="Training loss")
    if logy:
        ax.set_yscale("log")
    ax.legend()
    return ax


def loglog_slope(x, y) -> float:
    """Least-squares slope of log y against log x: the order of a power law y ~ x^p."""
    return float(np.polyfit(np.log(_np(x)), np.log(_np(y)), 1)[0])


def reference_slope(ax, x, y0: float, slope: float, label=None, **kw):
    """A dashed power-law guide y = y0 (x / x[0])^slope on log-log axes."""
    x = np.asarray(x, dtype=float)
    kw = {"color": "k", "ls": "--", "lw": 0.8, **kw}
    ax.plot(x, y0 * (x / x[0]) ** slope, label=label or f"slope {slope:g}", **kw)


def plot_timeline(ax, ts, label=None, y=0.0, **kw):
    """Time points as ticks on a log axis (e.g. a Karras grid)."""
    ts = _np(ts)
    ax.scatter(ts, np.full_like(ts, y), marker="|", s=120, label=label, **kw)
    ax.set_xscale("log")
    return ax


def density_panels(mixture, ts: Sequence[float], size=2.4, score=True, particles=None):
    """A row of heatmaps of p_t for each t in ``ts``, with the (exact) score field and
    optionally particles (dict t -> points) on top. Returns the figure."""
    fig, axes = plt.subplots(1, len(ts), figsize=(size * len(ts), size + 0.4))
    for ax, t in zip(np.atleast_1d(axes), ts):
        plot_density(ax, mixture, t)
        if score:
            plot_score_field(ax, mixture.score, t, n=11, color="w", alpha=0.8)
        if particles is not None and t in particles:
            plot_samples(ax, particles[t], color="cyan", s=3, alpha=0.7)
        ax.set_title(f"$t = {t:g}$")
        ax.set(xlabel="$x_1$", ylabel="" if ax is not np.atleast_1d(axes)[0] else "$x_2$")
    fig.tight_layout()
    return fig


def coloured_map(ax_from, ax_to, x_from, x_to, lim_from, lim_to, s=3):
    """Show a map x_from -> x_to: colour points by their angle in x_from and keep the colour
    at their image. Two scatter plots on two Axes."""
    a, b = _np(x_from), _np(x_to)
    hue = (np.arctan2(a[:, 1], a[:, 0]) + math.pi) / (2 * math.pi)
    ax_from.scatter(a[:, 0], a[:, 1], c=hue, cmap="hsv", s=s, lw=0)
    ax_to.scatter(b[:, 0], b[:, 1], c=hue, cmap="hsv", s=s, lw=0)
    square(ax_from, lim_from)
    square(ax_to, lim_to)


def animate_paths(paths, ts, mixture=None, lim_fn=view_limit, size=3.2, dpi=60, interval=250):
    """A small HTML (jshtml) animation of particles along paths (steps, B, 2) at times ts,
    over the density p_t if a mixture is given. Keep steps small: every frame is a PNG."""
    from matplotlib import animation

    p, ts = _np(paths), [float(t) for t in _np(ts)]
    fig, ax = plt.subplots(figsize=(size, size), dpi=dpi)

    def frame(i):
        ax.clear()
        if mixture is not None:
            plot_density(ax, mixture, ts[i], lim=lim_fn(ts[i]), n=60, levels=10)
        ax.scatter(p[i, :, 0], p[i, :, 1], s=4, color="cyan", lw=0)
        lim = lim_fn(ts[i])
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), title=f"t = {ts[i]:.3g}")
        ax.set(xlabel="$x_1$", ylabel="$x_2$")

    anim = animation.FuncAnimation(fig, frame, frames=len(ts), interval=interval)
    html = anim.to_jshtml(default_mode="once")
    plt.close(fig)
    return html


def show_images(ax, images, nrow: int | None = None, title=None, pad: int = 1):
    """A batch of images in [-1, 1], shape (B, C, H, W), as one grid on ``ax`` (no axes).

    ``nrow`` images per row (default: a near-square grid); white padding between images.
    """
    from torchvision.utils import make_grid

    from ..data.images import to_uint8

    x = images.detach().cpu()
    nrow = nrow or int(np.ceil(np.sqrt(x.shape[0])))
    grid = make_grid(to_uint8(x), nrow=nrow, padding=pad, pad_value=255)
    ax.imshow(grid.permute(1, 2, 0).numpy(), interpolation="nearest")
    ax.set_axis_off()
    if title:
        ax.set_title(title)
    return ax


def plot_yardstick_ladder(axes, result: dict, noise_n: int | None = None):
    """The ladder of ``benchmarks/yardstick.py`` (its JSON ``result``) as horizontal bars, one
    panel per measure on ``axes`` (FD, KID, classifier score in the cmedu-classifier's
    features), with the real-vs-real spread at ``noise_n`` (default: the ladder's n)
    shaded: differences inside it are not resolved."""
    names = [r["samples"] for r in result["ladder"]]
    noise_n = noise_n or result["ladder"][0]["n"]
    spread = next(s for s in result["noise_summary"] if s["n"] == noise_n and s["real"] == "test")
    labels = {"fd": "FD (cmedu-classifier)", "kid": "KID (cmedu-classifier)",
              "classifier_score": "classifier score"}  # fmt: skip
    for ax, key in zip(axes, labels):
        y = np.arange(len(names))[::-1]
        ax.barh(y, [r[key] for r in result["ladder"]], color=PALETTE[0])
        ax.axvspan(spread[key]["min"], spread[key]["max"], color="0.6", alpha=0.5,
                   label=f"real vs real, n = {noise_n}")  # fmt: skip
        ax.set_yticks(y, names if ax is axes[0] else [""] * len(names))
        ax.set_xlabel(labels[key])
        if key == "kid":
            ax.set_xscale("symlog", linthresh=1e-3)
    axes[0].legend(loc="lower right")
    return axes
