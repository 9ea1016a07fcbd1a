"""One training loop for every method (DSM teacher, CD, CT, iCT), written as a generator.

``Trainer(config, out_dir).steps()`` yields a ``TrainState`` after every optimiser step, so
a notebook can plot, stop and resume at will, and the command line drives the same loop.
Checkpoints are written atomically every ``checkpoint_every`` steps and at the end; a
``Trainer`` on a directory that holds one resumes from its exact step (model, target,
evaluation EMA, optimiser, every random-number generator, and so N(k), mu(k)).
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm.auto import tqdm

from .checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from .constants import ICT_P_STD
from .device import autocast, default_device, make_generator
from .distances import get_distance
from .ema import ema_rate_for_run, ema_update
from .losses import ConsistencyDistillation, ConsistencyTraining, ImprovedConsistencyTraining
from .mlp import ToyMLP
from .parameterization import ConsistencyModel, EDMDenoiser
from .score_estimation import DenoisingScoreMatching
from .toys import GaussianMixture, toy_data

METHODS = ("dsm", "cd", "ct", "ict")


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last checkpoint on disk is left as it was."""


@dataclass
class TrainConfig:
    """Everything that defines a run. ``None`` fields take per-method defaults (``resolved``)."""

    data: str = "8gaussians"  # named toy or mixture .json
    method: str = "ict"  # dsm | cd | ct | ict
    steps: int | None = None  # total optimiser steps K
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    teacher: str | None = None  # CD: directory of a DSM run; None = exact mixture score
    # network F (toy MLP)
    hidden: int = 128
    depth: int = 3
    fourier_scale: float | None = None
    dropout: float = 0.0
    # method settings
    N: int = 18  # CD grid size (Table 3: 18 on CIFAR-10)
    solver: str = "heun"  # CD teacher step
    mu: float = 0.0  # CD target EMA rate (Table 3: 0 on CIFAR-10)
    s0: int | None = None  # CT / iCT schedule start
    s1: int | None = None  # CT / iCT schedule end
    mu0: float = 0.9  # CT target EMA at k = 0 (Table 3)
    P_mean: float | None = None  # iCT lognormal index proposal: mean of ln t (paper: -1.1)
    P_std: float = ICT_P_STD  # ... and its standard deviation
    mu_variant: str = "paper"  # CT mu(k): "paper" or "code"
    distance: str | None = None  # l2 | l1 | pseudo_huber | lpips
    ema_rate: float | None = None  # evaluation EMA; None = adapted to the run length
    checkpoint_every: int = 1000

    def resolved(self) -> TrainConfig:
        """Fill the ``None`` fields with the defaults of ``self.method`` (see ``DEFAULTS``)."""
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}: choose one of {METHODS}")
        values = dict(DEFAULTS[self.method])
        values.update({k: v for k, v in dataclasses.asdict(self).items() if v is not None})
        cfg = TrainConfig(**values)
        if cfg.ema_rate is None:
            cfg.ema_rate = ema_rate_for_run(cfg.steps)
        return cfg


# Defaults for 2D toys on a laptop CPU (one to two minutes each), chosen by measurement on
# 8gaussians (energy distance of 1-, 2-, 4-step samples; see README, "What was tried"):
# - fourier_scale 0.02, iCT's value, for every consistency model: with CM's 16 the network
#   is reliable only on the training grid, and multistep sampling off the grid fails;
# - batch 2048: at 512 the gradient noise dominated (CD 1-step 3x worse at equal time);
# - iCT: the curriculum is scaled to the run (s1 = 80, not 1280: the paper's assumes 400k
#   steps) and the lognormal proposal centred at P_mean = 0 rather than -1.1, which gave
#   4x lower 1-step energy distance on 8gaussians (large t matter more for 2D toys).
DEFAULTS: dict[str, dict] = {
    "dsm": dict(steps=4000, batch_size=2048, lr=1e-3, fourier_scale=16.0, distance="l2"),
    "cd": dict(steps=4000, batch_size=2048, lr=1e-3, fourier_scale=0.02, distance="l2"),
    "ct": dict(
        steps=6000, batch_size=2048, lr=1e-3, fourier_scale=0.02, distance="l2", s0=2, s1=150
    ),
    "ict": dict(
        steps=6000, batch_size=2048, lr=1e-3, fourier_scale=0.02, distance="pseudo_huber",
        s0=10, s1=80, P_mean=0.0,
    ),
}  # fmt: skip

# Fields that may change when a run resumes; any other change is refused.
RESUMABLE_CHANGES = {"checkpoint_every"}


@dataclass
class TrainState:
    """What the loop yields after each step."""

    step: int  # steps completed
    loss: float
    N: int  # grid size at this step (0 for DSM)
    model: torch.nn.Module  # online network (f_theta or D_phi)
    ema: torch.nn.Module  # evaluation EMA of the online network
    losses: list[float] = field(default_factory=list)  # loss after every step so far
    seconds: float = 0.0  # wall time spent in steps() so far (this process)


def build_model(cfg: TrainConfig, dim: int) -> torch.nn.Module:
    """F wrapped in its parameterisation: ``EDMDenoiser`` for DSM, else ``ConsistencyModel``."""
    net = ToyMLP(dim, cfg.hidden, cfg.depth, fourier_scale=cfg.fourier_scale, dropout=cfg.dropout)
    return EDMDenoiser(net) if cfg.method == "dsm" else ConsistencyModel(net)


def build_objective(cfg: TrainConfig, data, device: torch.device):
    """The loss object of ``cfg.method``."""
    distance = get_distance(cfg.distance)
    if cfg.method == "dsm":
        return DenoisingScoreMatching()
    if cfg.method == "cd":
        teacher = load_teacher(cfg.teacher, data, device)
        return ConsistencyDistillation(teacher, cfg.N, cfg.solver, cfg.mu, distance=distance)
    if cfg.method == "ct":
        return ConsistencyTraining(
            cfg.steps, cfg.s0, cfg.s1, cfg.mu0, cfg.mu_variant, distance=distance
        )
    return ImprovedConsistencyTraining(
        cfg.steps, cfg.s0, cfg.s1, cfg.P_mean, cfg.P_std, distance=distance
    )


def load_teacher(teacher_dir: str | None, data, device: torch.device):
    """CD's teacher: a trained DSM denoiser from ``teacher_dir``, else the exact mixture."""
    if teacher_dir is not None:
        teacher = load_model(teacher_dir, device=device)
        if not isinstance(teacher, EDMDenoiser):
            raise ValueError(f"--teacher {teacher_dir} is not a DSM (EDM denoiser) run")
        return teacher
    if isinstance(data, GaussianMixture):
        return data
    raise ValueError(
        f"CD needs a teacher: {data!r} has no closed-form score. Train one with "
        "`python -m cmedu train --method dsm --out TEACHER_DIR` and pass --teacher TEACHER_DIR"
    )


def load_model(directory: str | Path, which: str = "ema", device="cpu") -> torch.nn.Module:
    """The model of a run directory in eval mode: ``which`` = "ema" (default) or "online"."""
    state, config = load_checkpoint(directory)
    cfg = TrainConfig(**config)
    model = build_model(cfg, state["dim"])
    model.load_state_dict(state[which])
    return model.to(device).eval()


class Trainer:
    """Holds a run's state; ``steps()`` is the training loop.

    Parameters
    ----------
    config : TrainConfig
    out_dir : directory for checkpoints (None: keep nothing on disk). If it already holds a
        checkpoint, training resumes from it; its config must match.
    device : "cpu", "cuda", "mps" or None for the best available.
    """

    def __init__(self, config: TrainConfig, out_dir: str | Path | None = None, device=None):
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if has_checkpoint(self.out_dir):
            config = _check_resumable(config.resolved(), self.out_dir)
        self.config = cfg = config.resolved()
        self.device = default_device(device)
        self.data = toy_data(cfg.data)
        self.generator = make_generator(cfg.seed, self.device)
        torch.manual_seed(cfg.seed)  # network initialisation and dropout
        self.model = build_model(cfg, self.data.dim).to(self.device)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.objective = build_objective(cfg, self.data, self.device)
        self.target = copy.deepcopy(self.model).requires_grad_(False)
        self.optimizer = torch.optim.RAdam(self.model.parameters(), lr=cfg.lr)
        self.step, self.losses = 0, []
        if has_checkpoint(self.out_dir):
            self._load()

    def _state(self) -> dict:
        return {
            "step": self.step,
            "dim": self.data.dim,
            "online": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "losses": self.losses,
        }

    def _load(self) -> None:
        state, _ = load_checkpoint(self.out_dir)
        self.model.load_state_dict(state["online"])
        self.ema.load_state_dict(state["ema"])
        self.target.load_state_dict(state["target"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        self.step, self.losses = state["step"], list(state["losses"])

    def save(self) -> None:
        """Write the checkpoint of the current step (atomically)."""
        if self.out_dir is not None:
            save_checkpoint(self.out_dir, self._state(), dataclasses.asdict(self.config))

    def train_step(self) -> tuple[float, int]:
        """One optimiser step of Algorithm 2/3 (or DSM); returns (loss, N)."""
        cfg, k = self.config, self.step
        x = self.data.sample(cfg.batch_size, self.generator).to(self.device)
        target = self.target if self.objective.uses_target else self.model
        with autocast(self.device):
            out = self.objective(self.model, target, x, k, self.generator)
        if not torch.isfinite(out.loss):
            raise TrainingDiverged(
                f"loss became {out.loss.item()} at step {k + 1} of {cfg.method} on {cfg.data}; "
                f"the last checkpoint ({_where(self.out_dir)}) is untouched. Try a lower --lr."
            )
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()
        self.optimizer.step()
        if self.objective.uses_target:
            ema_update(self.target, self.model, self.objective.target_mu(k))  # Eq. (8)
        ema_update(self.ema, self.model, cfg.ema_rate)
        self.step += 1
        return out.loss.item(), out.N

    def steps(self, progress: bool = True) -> Iterator[TrainState]:
        """The training loop: run to ``config.steps``, yielding the state after every step."""
        cfg, start = self.config, time.perf_counter()
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not progress, desc=f"{cfg.method}")
        with bar:
            while self.step < cfg.steps:
                loss, N = self.train_step()
                self.losses.append(loss)
                bar.update(1)
                if self.step % 50 == 0 or self.step == cfg.steps:
                    bar.set_postfix(loss=f"{_smooth(self.losses):.4g}", N=N)
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    self.save()
                yield TrainState(
                    self.step, loss, N, self.model, self.ema, self.losses,
                    time.perf_counter() - start,
                )  # fmt: skip

    def run(self, progress: bool = True) -> TrainState | None:
        """Train to the end; returns the last state (None if there was nothing left to do)."""
        last = None
        for last in self.steps(progress):  # noqa: B007
            pass
        return last


def _check_resumable(cfg: TrainConfig, out_dir: Path) -> TrainConfig:
    _, saved = load_checkpoint(out_dir)
    new = dataclasses.asdict(cfg)
    diff = {k: (saved.get(k), v) for k, v in new.items() if saved.get(k) != v}
    diff = {k: d for k, d in diff.items() if k not in RESUMABLE_CHANGES}
    if diff:
        changes = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
        raise ValueError(
            f"{out_dir} holds a run with a different configuration ({changes}); "
            "use another --out directory, or the same settings to resume"
        )
    return cfg


def _smooth(losses: list[float], window: int = 100) -> float:
    tail = losses[-window:]
    return sum(tail) / len(tail) if tail else math.nan


def _where(out_dir: Path | None) -> str:
    return str(out_dir / "checkpoint.pt") if out_dir is not None else "none: no --out given"
