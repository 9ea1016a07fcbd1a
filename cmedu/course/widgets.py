"""Interactive explorers for the notebook course, with a static fallback.

Each explorer builds an ipywidgets UI when a live Jupyter frontend is attached. When the
notebook runs headless (nbval, nbconvert / nbclient, a docs build) there is nobody to move
a slider, so the explorer draws a static figure of its default setting instead.

Headless is decided by ``is_live()``: ``CMEDU_HEADLESS=1`` forces the static figure and
``CMEDU_LIVE=1`` the UI; otherwise the UI is built only inside an IPython kernel started
by a Jupyter server (JupyterLab / Notebook set ``JPY_SESSION_NAME`` for the kernels they
start), VS Code or Colab. nbclient, nbval and nbconvert start bare kernels.

Everything a redraw needs is precomputed when the explorer is built, so that moving a
control redraws in well under a second on a CPU.
"""

from __future__ import annotations

import copy
import math
import os
import sys

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.colors import LogNorm
from matplotlib.ticker import FormatStrFormatter, NullLocator

from ..metrics import energy_distance
from ..pfode import karras_timesteps, prior_sample
from ..runtime.progress import tqdm
from ..sampling import default_times, multistep_sample
from ..solvers import consistency_function, reference_pf_ode, solve_pf_ode
from ..training.config import TrainConfig
from ..training.loop import Trainer
from . import plotting


def is_live() -> bool:
    """True when a Jupyter frontend can show widgets (see the module docstring)."""
    if os.environ.get("CMEDU_HEADLESS") == "1":
        return False
    if os.environ.get("CMEDU_LIVE") == "1":
        return True
    try:
        from IPython import get_ipython
    except ImportError:
        return False
    ip = get_ipython()
    if ip is None or not hasattr(ip, "kernel"):
        return False
    frontends = ("JPY_SESSION_NAME", "VSCODE_PID", "VSCODE_CWD")
    return any(os.environ.get(v) for v in frontends) or "google.colab" in sys.modules


def _static(draw, **defaults) -> bool:
    """Headless: draw the default setting as a static figure and return True."""
    if is_live():
        return False
    draw(**defaults)
    plt.show()
    return True


def _display(ui):
    from IPython.display import display

    display(ui)
    return ui


# --- PF-ODE: density, score field and particles against t ---------------------------------


class PFODEExplorer:
    """A t slider over p_t (heatmap), the exact score field and PF-ODE particles.

    Parameters
    ----------
    mixture : GaussianMixture (exact density and score)
    n_particles : particles started from the prior N(0, T^2 I) and moved by the PF-ODE
    n_times : slider positions (a Karras grid from eps to T)
    """

    def __init__(self, mixture, n_particles=400, n_times=41, seed=0, res=80):
        self.mixture = mixture
        self.ts = karras_timesteps(n_times).flip(0)  # descending: T ... eps
        g = torch.Generator().manual_seed(seed)
        x_T = prior_sample((n_particles, mixture.dim), generator=g, dtype=torch.float64)
        self.paths = reference_pf_ode(x_T, mixture, self.ts, rtol=1e-7, atol=1e-7).numpy()
        self.images = [self._density(float(t), res) for t in self.ts]
        self.fields = [self._field(float(t)) for t in self.ts]

    def _density(self, t, res):
        lim = plotting.view_limit(t)
        pts, X, Y = plotting.grid_points(lim, res)
        logp = self.mixture.log_prob(pts, t).reshape(res, res).numpy()
        levels = plotting.density_levels(logp)
        return X, Y, np.maximum(logp, levels[0]), levels, lim

    def _field(self, t, n=13):
        pts, X, Y = plotting.grid_points(plotting.view_limit(t), n)
        v = (self.mixture.score(pts, t) * t).numpy()  # t s(x, t) = -dx/dt
        return X, Y, v[:, 0].reshape(n, n), v[:, 1].reshape(n, n)

    def draw(self, index=0, show_score=True, show_particles=True, trails=False):
        """The panel at slider position ``index`` (0 = T, last = eps)."""
        t = float(self.ts[index])
        X, Y, logp, levels, lim = self.images[index]
        fig, ax = plt.subplots(figsize=(5, 5))
        ax.contourf(X, Y, logp, levels=levels, cmap="magma")
        ax.grid(False)
        if show_score:
            X, Y, U, V = self.fields[index]
            ax.quiver(X, Y, U, V, color="w", alpha=0.8, angles="xy", label=r"$t\,\nabla\log p_t$")
        if show_particles:
            p = self.paths[index]
            ax.scatter(p[:, 0], p[:, 1], s=4, color="cyan", lw=0, label="PF-ODE particles")
            if trails:
                for b in range(0, p.shape[0], 8):
                    ax.plot(self.paths[: index + 1, b, 0], self.paths[: index + 1, b, 1],
                            color="cyan", lw=0.5, alpha=0.5)  # fmt: skip
        ax.set(xlim=(-lim, lim), ylim=(-lim, lim), xlabel="$x_1$", ylabel="$x_2$")
        ax.set_title(f"log $p_t$, score field and particles at t = {t:.3g}")
        if show_score or show_particles:
            ax.legend(loc="upper right", fontsize="x-small")
        return fig

    def show(self, index=None, t=0.3):
        """The UI (live) or the figure at ``index`` (headless); default: the grid time
        nearest ``t``."""
        import ipywidgets as w

        if index is None:
            index = int(np.argmin(np.abs(np.log(self.ts.numpy() / t))))
        if _static(self.draw, index=index, trails=True):
            return None
        labels = [(f"{float(t):.3g}", i) for i, t in enumerate(self.ts)]
        wide = w.Layout(width="500px")
        slider = w.SelectionSlider(
            options=labels, value=index, description="t", continuous_update=False, layout=wide
        )
        # The Play button starts at the slider's position: jslink copies play.value into the
        # slider when the link is made, so a Play at 0 would reset the view to t = T.
        play = w.Play(value=index, min=0, max=len(labels) - 1, interval=400)
        w.jslink((play, "value"), (slider, "index"))
        boxes = dict(show_score=w.Checkbox(True, description="score field"),
                     show_particles=w.Checkbox(True, description="particles"),
                     trails=w.Checkbox(False, description="trails"))  # fmt: skip
        out = w.interactive_output(
            lambda index, **kw: (self.draw(index, **kw), plt.show()), {"index": slider, **boxes}
        )
        return _display(w.VBox([w.HBox([play, slider]), w.HBox(list(boxes.values())), out]))


def pf_ode_explorer(mixture, **kw) -> None:
    """Build a ``PFODEExplorer`` and show it (UI live, static figure headless)."""
    PFODEExplorer(mixture, **kw).show()


# --- ODE solvers: method, NFE and rho --------------------------------------------------------


class SolverExplorer:
    """Euler or Heun with a chosen number of evaluations (NFE) and grid curvature rho,
    against the scipy reference: trajectories, end points and the mean end-point error."""

    def __init__(self, mixture, n_points=600, n_paths=12, seed=0):
        self.mixture = mixture
        g = torch.Generator().manual_seed(seed)
        self.x_T = prior_sample((n_points, mixture.dim), generator=g, dtype=torch.float64)
        dense = karras_timesteps(80).flip(0)
        self.ref_paths = reference_pf_ode(self.x_T[:n_paths], mixture, dense).numpy()
        ends = torch.tensor([dense[0], dense[-1]], dtype=torch.float64)
        self.ref_end = reference_pf_ode(self.x_T, mixture, ends)[-1]
        self.n_paths = n_paths

    def solve(self, solver="heun", nfe=16, rho=7.0):
        """(trajectory, number of evaluations used) on a Karras grid with rho."""
        steps = max(1, nfe // 2) if solver == "heun" else max(1, nfe)
        ts = karras_timesteps(steps + 1, rho=rho).flip(0)
        path = solve_pf_ode(self.x_T, self.mixture, ts, solver, return_trajectory=True)
        return path, steps * (2 if solver == "heun" else 1)

    def draw(self, solver="heun", nfe=16, rho=7.0):
        path, used = self.solve(solver, nfe, rho)
        err = (path[-1] - self.ref_end).norm(dim=1).mean().item()
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4.2))
        plotting.plot_trajectories(
            a, self.ref_paths, color="0.6", label="scipy reference", ends=False
        )
        plotting.plot_trajectories(a, path[:, : self.n_paths], color="tab:red", label=solver)
        plotting.square(a, 3.0, f"Trajectories (zoom on $|x| < 3$), {solver}, NFE = {used}")
        a.legend(loc="upper right")
        plotting.plot_samples(
            b, self.ref_end, color=plotting.DATA_COLOR, label="reference end points"
        )
        plotting.plot_samples(b, path[-1], color="tab:red", label=f"{solver} end points")
        plotting.square(b, 1.6, f"End points at t = eps: mean error {err:.2e}")
        b.legend(loc="lower left", markerscale=4)
        fig.suptitle(f"{solver}, NFE = {used}, rho = {rho:g}")
        fig.tight_layout()
        return fig

    def show(self, solver="heun", nfe=16, rho=7.0):
        if _static(self.draw, solver=solver, nfe=nfe, rho=rho):
            return None
        import ipywidgets as w

        wide = w.Layout(width="360px")
        controls = dict(
            solver=w.ToggleButtons(options=["euler", "heun"], value=solver, description="solver",
                                   style={"button_width": "72px"}),
            nfe=w.SelectionSlider(options=[1, 2, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128], value=nfe,
                                  description="NFE", continuous_update=False, layout=wide),
            rho=w.FloatSlider(value=rho, min=1.0, max=12.0, step=0.5, description="rho",
                              continuous_update=False, layout=wide),
        )  # fmt: skip
        out = w.interactive_output(lambda **kw: (self.draw(**kw), plt.show()), controls)
        # One row: the method on the left, its two sliders stacked on the right (three
        # controls in one row squeezed the toggle buttons into a column).
        sliders = w.VBox([controls["nfe"], controls["rho"]])
        return _display(w.VBox([w.HBox([controls["solver"], sliders]), out]))


def solver_explorer(mixture, **kw) -> None:
    """Build a ``SolverExplorer`` and show it (UI live, static figure headless)."""
    SolverExplorer(mixture, **kw).show()


# --- Multistep consistency sampling: steps and time points ----------------------------------


class MultistepExplorer:
    """Algorithm 1 with a chosen number of steps and time points tau_1 > tau_2 > ...:
    redraws the samples and their energy distance to data."""

    def __init__(self, model, data, n=2000, seed=0, max_steps=8, eps=None, T=None):
        self.model, self.max_steps, self.seed, self.n = model, max_steps, seed, n
        self.eps, self.T = eps or model.eps, T or model.T
        g = torch.Generator().manual_seed(seed + 1)
        self.reference = data.sample(n, g)
        self.device = next(model.parameters()).device

    def samples(self, ts):
        """n samples with time points ts = [T, tau_1, ...] (same seed every time)."""
        g = torch.Generator(device=self.device).manual_seed(self.seed)
        x_T = prior_sample((self.n, 2), self.T, generator=g)
        return multistep_sample(self.model, x_T, ts, generator=g, eps=self.eps, T=self.T).cpu()

    def draw(self, taus=()):
        ts = [self.T, *sorted(taus, reverse=True)]
        fig, ax = plt.subplots(figsize=(4.6, 4.6))
        if any(a <= b for a, b in zip(ts, ts[1:])):
            ax.text(0.5, 0.5, "time points must be distinct", ha="center", transform=ax.transAxes)
            return fig
        x = self.samples(ts)
        ed = energy_distance(x, self.reference)
        plotting.plot_samples(ax, self.reference, color=plotting.DATA_COLOR, label="data")
        plotting.plot_samples(ax, x, label="samples")
        times = ", ".join(f"{t:.3g}" for t in ts)
        plotting.square(ax, 1.6, f"{len(ts)} steps, t = ({times})\nenergy distance {ed:.4f}")
        ax.legend(loc="lower left", markerscale=4)
        return fig

    def show(self, steps=2, taus=None):
        import ipywidgets as w

        default = karras_timesteps(self.max_steps + 1).flip(0)[1:-1].tolist()
        taus = list(taus) if taus is not None else default_times(steps)[1:].tolist()
        if _static(self.draw, taus=taus[: steps - 1]):
            return None
        lo, hi = math.log10(self.eps * 1.01), math.log10(self.T * 0.99)
        sliders = [
            w.FloatLogSlider(value=(taus + default)[i], base=10, min=lo, max=hi, step=0.02,
                             description=f"tau_{i + 1}", continuous_update=False,
                             readout_format=".3g")
            for i in range(self.max_steps - 1)
        ]  # fmt: skip
        nsteps = w.IntSlider(
            value=steps, min=1, max=self.max_steps, description="steps", continuous_update=False
        )
        out = w.Output()

        def redraw(*_):
            for i, s in enumerate(sliders):
                s.layout.display = "" if i < nsteps.value - 1 else "none"
            with out:
                out.clear_output(wait=True)
                self.draw([s.value for s in sliders[: nsteps.value - 1]])
                plt.show()

        for c in [nsteps, *sliders]:
            c.observe(redraw, names="value")
        redraw()
        return _display(w.HBox([w.VBox([nsteps, *sliders]), out]))


def multistep_explorer(model, data, steps=2, taus=None, **kw) -> None:
    """Build a ``MultistepExplorer`` and show it (UI live, static figure headless)."""
    MultistepExplorer(model, data, **kw).show(steps, taus)


# --- Zero-shot editing (Algorithm 4): task, mask and number of steps -------------------------


class EditingExplorer:
    """Zero-shot editing of a few images (Algorithm 4 of Song et al. 2023, App. D): choose the
    task, the inpainting mask and the number of steps; shows original, input and result.

    Each (task, mask, steps) is computed once (``steps`` evaluations of f_theta on the
    batch) and cached, so returning to a setting redraws at once.

    Parameters
    ----------
    model : consistency model f_theta on images in [-1, 1]
    images : Tensor, (B, C, H, W) in [-1, 1], the references (a few: every redraw edits all)
    label : data name for the titles, e.g. "CIFAR-10 (JPEG copy)"
    """

    TASKS = ("inpaint", "colorize", "super-resolve 2x", "super-resolve 4x", "denoise")

    def __init__(self, model, images, label="", seed=0, denoise_sigma=0.5):
        from ..editing import inpainting_masks

        self.model, self.images, self.label, self.seed = model, images, label, seed
        self.sigma = denoise_sigma
        self.masks = inpainting_masks(images.shape[-2], images.shape[-1], seed=seed)
        self.device = next(model.parameters()).device
        self.cache = {}

    def edit(self, task="inpaint", mask="square", steps=2):
        """(input shown, result) for one setting, both (B, C, H, W) on the CPU."""
        from .. import editing

        key = (task, mask if task == "inpaint" else None, steps if task != "denoise" else 1)
        if key in self.cache:
            return self.cache[key]
        g = torch.Generator(device=self.device).manual_seed(self.seed)
        x = self.images.to(self.device)
        kw = dict(generator=g, clip=(-1, 1))
        ts = default_times(steps)
        if task == "inpaint":
            m = self.masks[mask].to(self.device)
            shown, out = x * (1 - m), editing.inpaint(self.model, x, m, ts, **kw)
        elif task == "colorize":
            shown = editing.to_gray(x)
            out = editing.colorize(self.model, shown, ts, **kw)
        elif task.startswith("super-resolve"):
            p = int(task.split()[-1][:-1])
            low = editing.downsample(x, p)
            shown = editing.upsample(low, p)
            out = editing.super_resolve(self.model, low, p, ts, **kw)
        else:
            noise = torch.randn(x.shape, generator=g, device=self.device, dtype=x.dtype)
            shown = x + self.sigma * noise
            out = editing.denoise(self.model, shown, self.sigma, clip=(-1, 1))
        self.cache[key] = (shown.cpu(), out.cpu())
        return self.cache[key]

    def draw(self, task="inpaint", mask="square", steps=2):
        shown, out = self.edit(task, mask, steps)
        fig, axes = plt.subplots(3, 1, figsize=(0.75 * len(out) + 1.2, 3.4))
        what = f"mask {mask!r}, " if task == "inpaint" else ""
        what += f"sigma = {self.sigma:g}" if task == "denoise" else f"{steps} steps"
        rows = (("reference", self.images), ("input", shown), (f"{task} ({what})", out))
        for ax, (title, batch) in zip(axes, rows):
            plotting.show_images(ax, batch.clamp(-1, 1), nrow=len(batch))
            ax.set_title(title, fontsize="small")
        fig.suptitle(f"Zero-shot editing, Algorithm 4: {self.label}", fontsize="small")
        fig.tight_layout()
        return fig

    def show(self, task="inpaint", mask="square", steps=2):
        """The UI (live) or the figure of the given setting (headless)."""
        if _static(self.draw, task=task, mask=mask, steps=steps):
            return None
        import ipywidgets as w

        controls = dict(
            task=w.Dropdown(options=self.TASKS, value=task, description="task"),
            mask=w.Dropdown(options=list(self.masks), value=mask, description="mask"),
            steps=w.SelectionSlider(options=[1, 2, 3, 4, 6, 8], value=steps, description="steps",
                                    continuous_update=False),
        )  # fmt: skip
        out = w.interactive_output(lambda **kw: (self.draw(**kw), plt.show()), controls)
        return _display(w.VBox([w.HBox(list(controls.values())), out]))


def editing_explorer(model, images, **kw) -> None:
    """Build an ``EditingExplorer`` and show it (UI live, static figure headless)."""
    EditingExplorer(model, images, **kw).show()


# --- The consistency function along PF-ODE trajectories: f_theta against f* ---------------


def doubling_snapshots(steps: int, n: int = 5) -> list[int]:
    """Up to ``n`` training steps, each twice the one before, ending at ``steps``:
    188, 375, 750, 1500, 3000 for 3000 (a toy run learns most in its first steps)."""
    return sorted({max(1, round(steps / 2**k)) for k in range(n)})


def trajectories_to_distinct_modes(mixture, ts, n_paths: int, seed: int = 0, candidates=64):
    """Exact PF-ODE trajectories (scipy, Eq. (3)) at the times ``ts`` (T first), from prior
    samples x_T ~ N(0, T^2 I) chosen so that they end at different modes while there are
    modes left; shape (len(ts), n_paths, d)."""
    g = torch.Generator().manual_seed(seed)
    x_T = prior_sample((candidates, mixture.dim), float(ts[0]), generator=g, dtype=torch.float64)
    ends = reference_pf_ode(x_T, mixture, ts[[0, -1]], rtol=1e-7, atol=1e-7)[-1]
    mode = torch.cdist(ends, mixture.means).argmin(1).tolist()
    first = [i for i in range(candidates) if mode[i] not in mode[:i]]  # one per mode
    chosen = (first + [i for i in range(candidates) if i not in first])[:n_paths]
    return reference_pf_ode(x_T[chosen], mixture, ts, rtol=1e-9, atol=1e-9)


def cd_snapshots(mixture, N: int, steps: int, at, device=None, bar=None, **config) -> dict:
    """Train CD (Algorithm 2; the "course-toy" preset, the exact mixture as teacher) with a
    grid of N times for ``steps`` steps; returns {step: weights of the evaluation EMA, on the
    CPU} at each step of ``at``, and the network itself under the key ``"net"``."""
    cfg = TrainConfig.preset("course-toy", "cd", N=N, steps=steps, **config)
    trainer = Trainer(cfg, device=device, data=mixture)
    found = {}
    for state in trainer.steps(progress=False):
        if state.step in at:
            found[state.step] = {
                k: v.detach().cpu().clone() for k, v in state.ema.state_dict().items()
            }
        if bar is not None:
            bar.update(1)
    found["net"] = copy.deepcopy(trainer.ema).to("cpu", torch.float64)
    return found


class ConsistencyFunctionExplorer:
    """The consistency model f_theta along exact PF-ODE trajectories against the exact
    consistency function f* (Sec. 3 of Song et al. 2023), for CD runs with several grid
    sizes N, at several points of their training.

    Left: a trajectory x_t in the plane, f_theta(x_t, t) at every time on it (coloured by t)
    and f*(x_t, t), which is the same point for every t: the trajectory's end. Right:
    ||f_theta(x_t, t) - f*(x_t, t)|| against t, zero at t = eps by the boundary condition.

    Everything is computed when the explorer is built: the trajectories, f* at every point
    of them (one scipy solve from each (x_t, t) down to eps, independent of the trajectory's
    own end), one CD run per N with its evaluation EMA kept at the ``snapshots`` steps, and
    f_theta of every snapshot at every point. A redraw only plots.

    Parameters
    ----------
    mixture : GaussianMixture, CD's teacher (its exact denoiser) and the ground truth
    Ns : grid sizes N of the CD runs (Eq. (7); the paper's CIFAR-10 setting is 18)
    steps : training steps of each run; snapshots: the steps whose EMA is kept
        (default ``doubling_snapshots(steps)``)
    n_paths, n_times : trajectories (ending at distinct modes) and times on each (a Karras
        grid from T to eps)
    config : other ``TrainConfig`` fields of the runs, e.g. ``mu=0.0`` (Eq. (8))
    """

    def __init__(self, mixture, Ns=(3, 6, 18), steps=3000, snapshots=None, n_paths=6,
                 n_times=40, seed=0, device=None, progress=True, **config):  # fmt: skip
        self.Ns, self.steps = tuple(Ns), steps
        self.snapshots = list(snapshots or doubling_snapshots(steps))
        self.ts = karras_timesteps(n_times).flip(0)  # descending: T ... eps
        self.paths = trajectories_to_distinct_modes(mixture, self.ts, n_paths, seed)
        f_star = consistency_function(mixture, rtol=1e-9, atol=1e-9)
        self.f_star = torch.stack([f_star(x, t) for x, t in zip(self.paths, self.ts)]).numpy()
        with tqdm(total=len(self.Ns) * steps, desc="CD runs", disable=not progress) as bar:
            runs = {N: cd_snapshots(mixture, N, steps, self.snapshots, device, bar, **config)
                    for N in self.Ns}  # fmt: skip
        self.nets = {N: run.pop("net") for N, run in runs.items()}
        self.weights = {(N, s): w for N, run in runs.items() for s, w in run.items()}
        self.f_theta = {key: self.evaluate(*key) for key in self.weights}
        self.errors = {k: np.linalg.norm(f - self.f_star, axis=-1) for k, f in self.f_theta.items()}
        self.data = mixture.sample(1000, torch.Generator().manual_seed(seed + 1)).numpy()

    def model(self, N, step):
        """f_theta of run N at ``step`` (its evaluation EMA), CPU float64."""
        net = self.nets[N]
        net.load_state_dict(self.weights[N, step])
        return net

    def evaluate(self, N, step) -> np.ndarray:
        """f_theta(x_t, t) at every point of the trajectories, (n_times, n_paths, d)."""
        net = self.model(N, step)
        with torch.no_grad():
            return torch.stack([net(x, t) for x, t in zip(self.paths, self.ts)]).numpy()

    def _plane(self, ax, path, N, step, lim=2.5):
        ts, paths = self.ts.numpy(), self.paths.numpy()[self.ts.numpy() <= 3.0]
        ax.scatter(*self.data.T, s=2, color=plotting.DATA_COLOR, alpha=0.3, lw=0)
        for b in range(paths.shape[1]):
            ax.plot(*paths[:, b].T, color="0.75", lw=0.8)
        ax.plot(*paths[:, path].T, color="k", lw=1.2,
                label="exact trajectory x_t (t ≤ 3)")  # fmt: skip
        f = self.f_theta[N, step][:, path]
        off = int((np.abs(f) > lim).any(1).sum())  # points outside the square, if any
        label = "f_θ(x_t, t), colour: t" + (f" ({off} off the view)" if off else "")
        ax.scatter(f[:, 0], f[:, 1], c=ts, norm=self._norm(), cmap="viridis", s=18, zorder=3,
                   edgecolors="k", linewidths=0.3, label=label)  # fmt: skip
        star = self.f_star[:, path]
        ax.scatter(star[:, 0], star[:, 1], marker="*", s=200, facecolors="none", zorder=4,
                   edgecolors="tab:red", linewidths=1.2, label="f*(x_t, t), every t")  # fmt: skip
        plotting.square(ax, lim, f"Trajectory {path}: N = {N}, step {step} of {self.steps}")
        ax.legend(loc="lower left", fontsize="x-small", markerscale=0.8)

    def _norm(self):
        return LogNorm(float(self.ts[-1]), float(self.ts[0]))

    def _error(self, ax, path, N, step):
        ts, err = self.ts.numpy(), self.errors[N, step]
        keep = ts > ts[-1]  # at t = eps the error is exactly 0 (boundary condition)
        for b in range(err.shape[1]):
            ax.loglog(ts[keep], err[keep, b], color="0.8", lw=0.8)
        ax.loglog(ts[keep], err[keep].mean(1), "k--", lw=1, label="mean over the trajectories")
        ax.loglog(ts[keep], err[keep, path], color="k", lw=1.2, gid="chosen")
        ax.scatter(ts[keep], err[keep, path], c=ts[keep], norm=self._norm(), cmap="viridis",
                   s=18, zorder=3, edgecolors="k", linewidths=0.3,
                   label=f"trajectory {path}")  # fmt: skip
        top = max(float(e[keep].max()) for e in self.errors.values())
        ax.vlines(karras_timesteps(N).numpy(), 1e-4, 2 * top, color="tab:red", lw=0.8, ls=":",
                  alpha=0.8, label=f"CD's grid, N = {N}")  # fmt: skip
        ax.set(xlabel="t (log scale)", ylabel="‖f_θ(x_t, t) − f*(x_t, t)‖",
               ylim=(1e-4, 2 * top),
               title=f"Error against f*: mean {err[keep].mean():.3f}")  # fmt: skip
        for axis in (ax.xaxis, ax.yaxis):  # plain labels, no minor ticks: a faster redraw
            axis.set_major_formatter(FormatStrFormatter("%g"))
            axis.set_minor_locator(NullLocator())
        ax.legend(loc="lower right", fontsize="x-small")

    def draw(self, path=0, N=None, step=None):
        """The figure of trajectory ``path`` for the run with grid size N at ``step``
        (defaults: the largest N, the last snapshot)."""
        N = self.Ns[-1] if N is None else N
        step = self.snapshots[-1] if step is None else step
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4.2))
        self._plane(a, path, N, step)
        self._error(b, path, N, step)
        fig.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.93, wspace=0.28)
        return fig

    def table(self) -> str:
        """The mean of ||f_theta(x_t, t) - f*(x_t, t)|| over the trajectories and the times
        t > eps, for every run (rows) and snapshot (columns), as text."""
        keep = self.ts.numpy() > float(self.ts[-1])
        lines = ["mean ||f_theta - f*|| over the trajectories and t > eps",
                 "step   " + "".join(f"{s:>8d}" for s in self.snapshots)]  # fmt: skip
        for N in self.Ns:
            row = [self.errors[N, s][keep].mean() for s in self.snapshots]
            lines.append(f"N = {N:<3d}" + "".join(f"{e:8.3f}" for e in row))
        return "\n".join(lines)

    def show(self, path=0, N=None, step=None):
        """The table of errors, then the UI (live) or the figure of the given setting
        (headless). Defaults: the middle N and the snapshot before the last, so that every
        slider can move right."""
        print(self.table())
        N = self.Ns[len(self.Ns) // 2] if N is None else N
        step = self.snapshots[-2 if len(self.snapshots) > 1 else -1] if step is None else step
        if _static(self.draw, path=path, N=N, step=step):
            return None
        import ipywidgets as w

        wide = w.Layout(width="360px")
        controls = dict(
            path=w.IntSlider(value=path, min=0, max=self.paths.shape[1] - 1,
                             description="trajectory", continuous_update=False, layout=wide),
            N=w.SelectionSlider(options=self.Ns, value=N, description="N",
                                continuous_update=False, layout=wide),
            step=w.SelectionSlider(options=self.snapshots, value=step, description="step",
                                   continuous_update=False, layout=wide),
        )  # fmt: skip
        out = w.interactive_output(lambda **kw: (self.draw(**kw), plt.show()), controls)
        return _display(w.VBox([w.HBox([controls["path"], controls["N"]]), controls["step"], out]))


def consistency_function_explorer(mixture, path=0, N=None, step=None, **kw) -> None:
    """Build a ``ConsistencyFunctionExplorer`` and show it (UI live, static figure headless)."""
    ConsistencyFunctionExplorer(mixture, **kw).show(path, N, step)


# --- MeanFlow: the average velocity u(z, r, t) against the exact one ------------------------


class AverageVelocityExplorer:
    """A learned average velocity u_theta(z, r, t) (MeanFlow, Geng et al. 2025) against the
    exact one of a 2D mixture, u(z_t, r, t) = (z_t - z_r) / (t - r) along the exact flow of
    the linear path z_t = (1 - t) x + t eps (Eq. (3); ``interpolants.average_velocity``).

    Left: arrows of u (black) and u_theta (orange) on a grid of points z at time t, over the
    data, both on one scale. Right: the relative error ||u_theta - u|| / ||u|| over the
    grid for every precomputed (t, r) pair, the chosen one outlined. r = t is the
    instantaneous velocity v(z, t) (flow matching); (r, t) = (0, 1) is one-step sampling.

    Everything (the exact u by ``solve_ivp``, u_theta) is computed when the explorer is built
    for ``ts`` x ``fractions`` (r = fraction x t); a redraw only plots.
    """

    def __init__(self, mixture, model, ts=(0.25, 0.5, 0.75, 1.0),
                 fractions=(0.0, 0.25, 0.5, 0.75, 1.0), n=13, lim=2.4, rtol=1e-8,
                 progress=True):  # fmt: skip
        from ..interpolants import average_velocity, linear

        self.ts, self.fractions, self.lim = tuple(ts), tuple(fractions), lim
        g = np.linspace(-lim, lim, n)
        self.z = torch.tensor(np.stack(np.meshgrid(g, g), -1).reshape(-1, 2), dtype=torch.float64)
        net = copy.deepcopy(model).to("cpu", torch.float64).eval()
        self.exact, self.learned = {}, {}
        pairs = [(t, f) for t in self.ts for f in self.fractions]
        for t, f in tqdm(pairs, desc="exact u by solve_ivp", disable=not progress):
            r = f * t
            self.exact[t, f] = average_velocity(mixture, linear(), self.z, r, t, rtol).numpy()
            B = self.z.shape[0]
            with torch.no_grad():
                rr, tt = (torch.full((B,), v, dtype=torch.float64) for v in (r, t))
                self.learned[t, f] = net(self.z, rr, tt).numpy()
        self.errors = {k: self.relative_error(*k) for k in self.exact}
        self.data = mixture.sample(1000, torch.Generator().manual_seed(0)).numpy()

    def relative_error(self, t, fraction) -> float:
        """sum ||u_theta - u|| / sum ||u|| over the grid at (t, r = fraction t)."""
        u, u_hat = self.exact[t, fraction], self.learned[t, fraction]
        return float(np.linalg.norm(u_hat - u, axis=1).sum() / np.linalg.norm(u, axis=1).sum())

    def _field(self, ax, t, fraction):
        u, u_hat = self.exact[t, fraction], self.learned[t, fraction]
        z = self.z.numpy()
        ax.scatter(*self.data.T, s=2, color=plotting.DATA_COLOR, alpha=0.3, lw=0)
        scale = 2.0 * max(np.linalg.norm(u, axis=1).max(), 1e-9) / self.lim  # one shared scale
        kw = dict(angles="xy", scale_units="xy", scale=scale, width=0.004)
        ax.quiver(z[:, 0], z[:, 1], u[:, 0], u[:, 1], color="k", label="exact u", **kw)
        ax.quiver(z[:, 0], z[:, 1], u_hat[:, 0], u_hat[:, 1], color="tab:orange", alpha=0.8,
                  label="learned $u_\\theta$", **kw)  # fmt: skip
        r = fraction * t
        title = f"$t = {t:g}$, $r = {r:.3g}$" + (" (one step)" if (r, t) == (0.0, 1.0) else "")
        plotting.square(ax, self.lim, title)
        ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.1), ncol=2, frameon=False)

    def _map(self, ax, t, fraction):
        grid = np.array([[self.errors[tt, f] for tt in self.ts] for f in self.fractions])
        im = ax.imshow(grid, origin="lower", cmap="magma_r", aspect="auto",
                       vmin=0, vmax=max(0.05, float(grid.max())))  # fmt: skip
        for i in range(len(self.fractions)):
            for j in range(len(self.ts)):
                color = "w" if grid[i, j] > 0.6 * im.get_clim()[1] else "k"
                ax.text(j, i, f"{grid[i, j]:.2f}", ha="center", va="center", color=color,
                        fontsize="small")  # fmt: skip
        j, i = self.ts.index(t), self.fractions.index(fraction)
        ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, ec="tab:blue", lw=2.5))
        ax.set_xticks(range(len(self.ts)), [f"{v:g}" for v in self.ts])
        ax.set_yticks(range(len(self.fractions)), [f"{v:g}" for v in self.fractions])
        ax.set(xlabel="$t$", ylabel="$r / t$",
               title="$\\|u_\\theta - u\\| \\,/\\, \\|u\\|$ over the grid")  # fmt: skip
        ax.grid(False)

    def draw(self, t=None, fraction=0.0):
        """The figure at time t (default: the last, 1) and r = fraction x t."""
        t = self.ts[-1] if t is None else t
        fig, (a, b) = plt.subplots(1, 2, figsize=(9, 4.4), width_ratios=(1.1, 1))
        self._field(a, t, fraction)
        self._map(b, t, fraction)
        fig.subplots_adjust(left=0.07, right=0.98, bottom=0.2, top=0.92, wspace=0.25)
        return fig

    def show(self, t=None, fraction=0.0):
        """The UI (live) or the figure of the given setting (headless). Default: one step,
        (r, t) = (0, 1). The t slider runs from noise (t = 1) towards the data, so that
        both sliders start at their left end."""
        t = self.ts[-1] if t is None else t
        if _static(self.draw, t=t, fraction=fraction):
            return None
        import ipywidgets as w

        wide = w.Layout(width="360px")
        controls = dict(
            t=w.SelectionSlider(options=sorted(self.ts, reverse=True), value=t, description="t",
                                continuous_update=False, layout=wide),  # noise to data
            fraction=w.SelectionSlider(options=self.fractions, value=fraction,
                                       description="r / t", continuous_update=False, layout=wide),
        )  # fmt: skip
        out = w.interactive_output(lambda **kw: (self.draw(**kw), plt.show()), controls)
        return _display(w.VBox([w.HBox([controls["t"], controls["fraction"]]), out]))


def average_velocity_explorer(mixture, model, t=None, fraction=0.0, **kw) -> None:
    """Build an ``AverageVelocityExplorer`` and show it (UI live, static figure headless)."""
    AverageVelocityExplorer(mixture, model, **kw).show(t, fraction)
