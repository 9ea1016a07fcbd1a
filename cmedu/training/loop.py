"""The training loop: one generator for every method (DSM teacher, CD, CT, iCT) and every
kind of data (2D toys, images).

``Trainer(config, out_dir).steps()`` yields a ``TrainState`` after every optimiser step, so
a notebook can plot, stop and resume at will, and the command line drives the same loop.
Checkpoints are written atomically every ``checkpoint_every`` steps and at the end; a
``Trainer`` on a directory that holds one resumes from its exact step (model, target,
evaluation EMA, optimiser, every random-number generator, and so N(k), mu(k)).

On a GPU the loop uses bfloat16 autocast, channels-last image nets, fused or foreach
optimiser kernels and keeps the dataset on the device; ``compile=True`` adds
``torch.compile``. Started by ``torchrun``, it trains with DistributedDataParallel (see
``cmedu.runtime.distributed``).
"""

from __future__ import annotations

import copy
import dataclasses
import inspect
import json
import math
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..data.images import ImageData
from ..data_scale import StandardizedData, fit_scale
from ..ema import ema_update
from ..runtime import distributed
from ..runtime.device import autocast, default_device, make_generator
from ..runtime.progress import tqdm
from .build import build_model, build_objective, build_optimizer, data_shape, load_data
from .checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from .config import RESUMABLE_CHANGES, TEACHER_METHODS, TrainConfig, data_kind
from .runs import NO_TEACHER, STANDARDIZED_TEACHER, init_from_denoiser, load_teacher


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last checkpoint on disk is left as it was."""


@dataclass
class TrainState:
    """What the loop yields after each step."""

    step: int  # steps completed
    loss: float  # mean over the global batch (all processes)
    N: int  # grid size at this step (0 for DSM)
    model: torch.nn.Module  # online network (f_theta or D_phi)
    ema: torch.nn.Module  # evaluation EMA of the online network
    losses: list[float] = field(default_factory=list)  # loss after every step so far
    seconds: float = 0.0  # wall time spent in steps() so far (this process)
    images_per_second: float = 0.0  # training throughput, last 50 steps (toys: points/s)


class Trainer:
    """Holds a run's state; ``steps()`` is the training loop.

    Parameters
    ----------
    config : TrainConfig
    out_dir : directory for checkpoints (None: keep nothing on disk). If it already holds a
        checkpoint, training resumes from it; its config must match.
    device : "cpu", "cuda", "mps" or None for the best available. Under ``torchrun`` each
        process takes GPU ``LOCAL_RANK`` and joins the process group
        (``cmedu.runtime.distributed``).
    data : optional dataset already in memory (an ``ImageData``, ``GaussianMixture`` or
        ``SampleToy``) to train on instead of loading ``config.data``, which then only names
        it (e.g. the synthetic images of the notebooks' fast mode).
    """

    def __init__(
        self, config: TrainConfig, out_dir: str | Path | None = None, device=None, data=None
    ):
        self.out_dir = Path(out_dir) if out_dir is not None else None
        if has_checkpoint(self.out_dir):
            config = _check_resumable(config.resolved(), self.out_dir)
        self.config = cfg = config.resolved()
        self.kind = data_kind(cfg.data)
        if self.kind == "image" and cfg.method in TEACHER_METHODS and cfg.teacher is None:
            raise ValueError(NO_TEACHER.format(data=repr(cfg.data)))  # before loading data
        self.dist, self.device = distributed.setup(default_device(device))
        self.batch = distributed.per_rank_batch(cfg.batch_size, self.dist.world_size)
        self.generator = make_generator(cfg.seed + self.dist.rank, self.device)
        if data is None:
            data = load_data(cfg, self.generator.device)
        elif isinstance(data, ImageData):
            data = data.to(self.generator.device)
        self.data = data
        if cfg.standardize:  # cmedu.data_scale: c and s are stored in the run's config
            if cfg.teacher is not None:
                raise ValueError(STANDARDIZED_TEACHER)
            if cfg.data_scale is None:
                cfg.data_center, cfg.data_scale = fit_scale(data)
            self.data = StandardizedData(data, cfg.data_center, cfg.data_scale)
        self.shape = data_shape(self.data)
        self._build_networks(cfg)
        params = [*self.model.parameters()]
        params += [p for m in self.objective.modules() for p in m.parameters()]  # sCM's w_phi
        self.optimizer = build_optimizer(cfg, params, self.device)
        self.step, self.losses = 0, []
        if has_checkpoint(self.out_dir):
            self._load()
        self.online = self._wrap(self.model)
        if self.kind == "image" and self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest convs
            torch.set_float32_matmul_precision("high")  # TF32 outside the bf16 autocast

    def _build_networks(self, cfg: TrainConfig) -> None:
        """The online network theta, its evaluation EMA, the objective (with CD's teacher)
        and, where the objective has one, the target network theta^-."""
        torch.manual_seed(cfg.seed)  # network initialisation: the same on every process
        self.model = build_model(cfg, self.shape).to(self.device)
        if self.dist.world_size > 1:
            torch.manual_seed(cfg.seed + self.dist.rank)  # dropout masks differ per process
        self.channels_last = self.kind == "image" and (
            cfg.channels_last if cfg.channels_last is not None else self.device.type == "cuda"
        )
        _set_memory_format(self.model, self.channels_last)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        teacher = (
            load_teacher(cfg.teacher, self.data, self.device) if cfg.method in TEACHER_METHODS
            else None
        )  # fmt: skip
        self.objective = build_objective(cfg, self.device, teacher)
        if cfg.init_from is not None:  # ECT: start from a DSM-trained denoiser's network F
            init_from_denoiser(self.model, cfg.init_from, self.shape, self.device)
            self.ema.load_state_dict(self.model.state_dict())
        _set_memory_format(teacher, self.channels_last)
        # theta^- <- theta (Alg. 2 / 3), only for objectives with a target EMA (mu > 0):
        # elsewhere the target is stopgrad(theta), the online network itself.
        self.target = (
            copy.deepcopy(self.model).requires_grad_(False) if self.objective.uses_target else None
        )

    def _wrap(self, model: nn.Module) -> nn.Module:
        """The module the loss calls: DDP across processes, then optionally compiled."""
        if self.dist.world_size > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            model = DistributedDataParallel(model, device_ids=ids, **_NO_BUFFER_SYNC)
        return torch.compile(model) if self.config.compile else model

    def _rng_state(self) -> dict:
        cuda = self.device.type == "cuda"
        return {
            "generator": self.generator.get_state(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": [torch.cuda.get_rng_state(self.device)] if cuda else [],
        }

    def _state(self) -> dict:
        rngs = distributed.gather(self._rng_state())  # every process's RNG (a collective)
        return {
            "step": self.step,
            "dim": math.prod(self.shape),
            "shape": list(self.shape),
            "online": self.model.state_dict(),
            "ema": self.ema.state_dict(),
            **({"target": self.target.state_dict()} if self.target is not None else {}),
            "objective": [m.state_dict() for m in self.objective.modules()],
            "optimizer": self.optimizer.state_dict(),
            **rngs[0],
            "rank_rngs": rngs,
            "losses": self.losses,
        }

    def _load(self) -> None:
        state, _ = load_checkpoint(self.out_dir)
        self.model.load_state_dict(state["online"])
        self.ema.load_state_dict(state["ema"])
        if self.target is not None:
            self.target.load_state_dict(state["target"])
        for module, saved in zip(self.objective.modules(), state.get("objective", [])):
            module.load_state_dict(saved)
        self.optimizer.load_state_dict(state["optimizer"])
        self.step, self.losses = state["step"], list(state["losses"])
        rngs = state.get("rank_rngs", [state])
        if len(rngs) == self.dist.world_size:
            self._set_rng_state(rngs[self.dist.rank])
        else:  # another number of processes: fresh, distinct streams from this step on
            seed = self.config.seed + 1000 * self.step + self.dist.rank
            self.generator.manual_seed(seed)
            torch.manual_seed(seed)

    def _set_rng_state(self, rng: dict) -> None:
        self.generator.set_state(rng["generator"])
        torch.set_rng_state(rng["torch_rng"])
        if rng["cuda_rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda_rng"][0], self.device)

    def save(self) -> None:
        """Write the checkpoint of the current step (atomically; rank 0 only, the others
        wait). Every process must call it."""
        if self.out_dir is None:
            return
        state = self._state()
        if self.dist.is_main:
            save_checkpoint(self.out_dir, state, dataclasses.asdict(self.config))
        distributed.barrier()

    def batch_of_data(self) -> torch.Tensor:
        """This process's share of the batch, x ~ p_data, shape (batch_size / W, *D)."""
        x = self.data.sample(self.batch, self.generator).to(self.device)
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def train_step(self) -> tuple[float, int]:
        """One pass through the loop of Algorithm 2 (CD) or 3 (CT, iCT), or of DSM; returns
        (loss, N). The objective draws n, z and the points, and evaluates L (lines 4-7)."""
        cfg, k = self.config, self.step
        x = self.batch_of_data()  # sample x ~ D
        target = self.target if self.target is not None else self.online  # stopgrad(theta)
        with autocast(self.device, cfg.bf16):  # L <- lambda(t_n) d(f_theta(.), f_theta^-(.))
            out = self.objective(self.online, target, x, k, self.generator)
        loss = distributed.mean(out.loss.detach())  # the same value on every process
        self._check_finite(loss, k)
        self._descend(out.loss, k)  # theta <- theta - eta grad_theta L
        if self.target is not None:  # theta^- <- stopgrad(mu theta^- + (1 - mu) theta), Eq. (8)
            ema_update(self.target, self.model, self.objective.target_mu(k))
        ema_update(self.ema, self.model, cfg.ema_rate)  # evaluation EMA (Table 3), not in Alg.
        self.step += 1  # k <- k + 1 (Algorithm 3)
        return loss.item(), out.N

    def _descend(self, loss: torch.Tensor, k: int) -> None:
        """One optimiser step on ``loss``; DDP averages the gradients over the processes in
        ``backward``. EDM's learning-rate ramp first, where the run has one."""
        self._set_lr(k)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def _check_finite(self, loss: torch.Tensor, k: int) -> None:
        cfg = self.config
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"loss became {loss.item()} at step {k + 1} of {cfg.method} on {cfg.data}; "
                f"the last checkpoint ({_where(self.out_dir)}) is untouched. Try a lower --lr."
            )

    def _set_lr(self, k: int) -> None:
        """The learning rate of step k: lr, times EDM's ramp min(1, images seen /
        warmup_images) where the run has one, times (1 + cos(pi k / K)) / 2 for the cosine
        schedule (Loshchilov & Hutter 2017, without restarts), which decays to 0 at k = K."""
        cfg, factor = self.config, 1.0
        if cfg.warmup_images:
            factor = min(1.0, (k + 1) * cfg.batch_size / cfg.warmup_images)
        if cfg.lr_schedule == "cosine":
            factor *= 0.5 * (1.0 + math.cos(math.pi * k / cfg.steps))
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * factor

    def steps(self, progress: bool = True) -> Iterator[TrainState]:
        """The training loop: run to ``config.steps``, yielding the state after every step."""
        cfg, start = self.config, time.perf_counter()
        show = progress and self.dist.is_main
        bar = tqdm(total=cfg.steps, initial=self.step, disable=not show, desc=f"{cfg.method}")
        durations = deque(maxlen=50)  # seconds of the last 50 train_step calls
        with bar:
            while self.step < cfg.steps:
                tic = time.perf_counter()
                loss, N = self.train_step()
                durations.append(time.perf_counter() - tic)
                rate = cfg.batch_size * len(durations) / sum(durations)
                self.losses.append(loss)
                bar.update(1)
                if self.step % (50 if self.kind == "toy" else 10) == 0 or self.step == cfg.steps:
                    bar.set_postfix(self._postfix(N, rate))
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    self.save()
                yield TrainState(
                    self.step, loss, N, self.model, self.ema, self.losses,
                    time.perf_counter() - start, rate,
                )  # fmt: skip

    def _postfix(self, N: int, rate: float) -> dict:
        postfix = {"loss": f"{_smooth(self.losses):.4g}", "N": N}
        return postfix if self.kind == "toy" else {**postfix, "img/s": f"{rate:.0f}"}

    def run(self, progress: bool = True) -> TrainState | None:
        """Train to the end; returns the last state (None if there was nothing left to do)."""
        last = None
        for last in self.steps(progress):  # noqa: B007
            pass
        return last


# The nets have no running statistics (GroupNorm), so DDP need not copy buffers before every
# forward pass; newer torch spells this ``forward_sync_buffers``, older ``broadcast_buffers``.
_NO_BUFFER_SYNC = (
    {"forward_sync_buffers": False}
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters
    else {"broadcast_buffers": False}
)


def _set_memory_format(module, channels_last: bool) -> None:
    """Image nets in channels-last (NHWC) memory, which tensor cores prefer."""
    if channels_last and isinstance(module, nn.Module):
        module.to(memory_format=torch.channels_last)


def _check_resumable(cfg: TrainConfig, out_dir: Path) -> TrainConfig:
    _, saved = load_checkpoint(out_dir)
    # Resolve the saved config too (fields added since it was written take their defaults)
    # and compare both as JSON (tuples in net_overrides come back as lists).
    saved = _as_json(TrainConfig(**saved).resolved())
    new = _as_json(cfg)
    diff = {k: (saved.get(k), v) for k, v in new.items() if saved.get(k) != v}
    diff = {k: d for k, d in diff.items() if k not in RESUMABLE_CHANGES}
    if diff:
        changes = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in diff.items())
        raise ValueError(
            f"{out_dir} holds a run with a different configuration ({changes}); "
            "use another --out directory, or the same settings to resume"
        )
    return cfg


def _as_json(cfg: TrainConfig) -> dict:
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def _smooth(losses: list[float], window: int = 100) -> float:
    tail = losses[-window:]
    return sum(tail) / len(tail) if tail else math.nan


def _where(out_dir: Path | None) -> str:
    return str(out_dir / "checkpoint.pt") if out_dir is not None else "none: no --out given"
