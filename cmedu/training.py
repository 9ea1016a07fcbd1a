"""One training loop for every method (DSM teacher, CD, CT, iCT) and every kind of data
(2D toys, images), written as a generator.

``Trainer(config, out_dir).steps()`` yields a ``TrainState`` after every optimiser step, so
a notebook can plot, stop and resume at will, and the command line drives the same loop.
Checkpoints are written atomically every ``checkpoint_every`` steps and at the end; a
``Trainer`` on a directory that holds one resumes from its exact step (model, target,
evaluation EMA, optimiser, every random-number generator, and so N(k), mu(k)).

The data decides the network F: a toy (``8gaussians``, a mixture ``.json``) gets the MLP,
images (``cifar10``, an image folder or ``.zip``) get a U-Net preset (``tiny``, ``small``,
``paper``). ``DEFAULTS`` holds the settings per (data kind, method). On a GPU the loop
uses bfloat16 autocast, channels-last image nets, fused or foreach optimiser kernels and
keeps the dataset on the device; ``compile=True`` adds ``torch.compile``. Started by
``torchrun``, it trains with DistributedDataParallel (see ``cmedu.distributed``).
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

from . import distributed
from .checkpoint import CHECKPOINT, has_checkpoint, load_checkpoint, save_checkpoint, stored_shape
from .constants import CT_S0, CT_S1, ICT_FOURIER_SCALE, ICT_P_MEAN, ICT_P_STD, ICT_S0, ICT_S1
from .data_scale import DataScaled, StandardizedData, fit_scale
from .device import autocast, default_device, make_generator
from .distances import get_distance
from .ema import ema_rate_for_run, ema_update
from .images import CIFAR10_NAMES, SYNTHETIC, ImageData, load_images
from .losses import ConsistencyDistillation, ConsistencyTraining, ImprovedConsistencyTraining
from .mlp import ToyMLP
from .parameterization import ConsistencyModel, EDMDenoiser
from .pretrained import load_pretrained
from .progress import tqdm
from .score_estimation import DenoisingScoreMatching
from .toys import GaussianMixture, toy_data
from .unet import CM_FOURIER_SCALE, UNET_PRESETS, unet_preset

METHODS = ("dsm", "cd", "ct", "ict")
NETS = tuple(UNET_PRESETS)  # image networks F: tiny | small | paper
OPTIMIZERS = {"radam": torch.optim.RAdam, "adam": torch.optim.Adam}
IMAGE_NAMES = (*CIFAR10_NAMES, SYNTHETIC)  # besides folders and .zip files


class TrainingDiverged(RuntimeError):
    """The loss became NaN or infinite; the last checkpoint on disk is left as it was."""


def data_kind(spec: str) -> str:
    """``"image"`` for "cifar10", a ``.zip``, or a folder path; ``"toy"`` for a toy name or
    a mixture ``.json``. A path that does not exist counts as an image folder, so that
    loading it reports the missing dataset."""
    s = str(spec)
    if s.lower() in IMAGE_NAMES or s.lower().endswith(".zip") or Path(s).expanduser().is_dir():
        return "image"
    return "image" if ("/" in s or "\\" in s) and not s.endswith(".json") else "toy"


@dataclass
class TrainConfig:
    """Everything that defines a run. ``None`` fields take the defaults of the data kind and
    method (``resolved``, ``DEFAULTS``)."""

    data: str = "8gaussians"  # toy name, mixture .json, "cifar10", or image folder / .zip
    method: str = "ict"  # dsm | cd | ct | ict
    steps: int | None = None  # total optimiser steps K
    batch_size: int | None = None  # global batch: each of W processes draws batch_size / W
    lr: float | None = None
    optimizer: str | None = None  # radam (CM, iCT) | adam (EDM teacher)
    warmup_images: int | None = None  # lr ramps up linearly over this many images (EDM)
    seed: int = 0
    teacher: str | None = None  # CD: directory of a DSM run; None = exact mixture score
    # image data
    data_root: str | None = None  # folder that holds (or gets) the "cifar10" download
    resolution: int | None = None  # image folders: centre-crop and resize to this side
    # network F: the toy MLP (hidden, depth) or a U-Net preset for images (net)
    hidden: int | None = None
    depth: int | None = None
    net: str | None = None  # tiny | small | paper (cmedu.unet.UNET_PRESETS)
    net_overrides: dict | None = None  # keyword overrides of the preset, e.g. model_channels
    fourier_scale: float | None = None
    dropout: float | None = None
    # method settings
    N: int = 18  # CD grid size (Table 3: 18 on CIFAR-10)
    solver: str = "heun"  # CD teacher step
    mu: float | None = None  # CD target EMA rate, Eq. (8) (Table 3: 0 CIFAR-10, 0.95 others)
    s0: int | None = None  # CT / iCT schedule start
    s1: int | None = None  # CT / iCT schedule end
    mu0: float = 0.9  # CT target EMA at k = 0 (Table 3)
    P_mean: float | None = None  # iCT lognormal index proposal: mean of ln t (paper: -1.1)
    P_std: float = ICT_P_STD  # ... and its standard deviation
    mu_variant: str = "paper"  # CT mu(k): "paper" or "code"
    distance: str | None = None  # l2 | l1 | pseudo_huber | lpips
    ema_rate: float | None = None  # evaluation EMA; None = adapted to the run length
    # data scale (cmedu.data_scale): train on (x - c) / s with s = std(x) / sigma_data
    standardize: bool = False
    data_center: list | None = None  # c, filled from the data when standardize is on
    data_scale: float | None = None  # s, likewise
    checkpoint_every: int = 1000
    # how to run: may change when a run resumes
    bf16: bool = True  # bfloat16 autocast on CUDA (a no-op on other devices)
    channels_last: bool | None = None  # image nets in NHWC memory; None = on CUDA only
    compile: bool = False  # torch.compile the network

    def resolved(self) -> TrainConfig:
        """Fill the ``None`` fields from ``DEFAULTS[data kind][method]``."""
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}: choose one of {METHODS}")
        kind = data_kind(self.data)
        self._check_network_fields(kind)
        values = dict(DEFAULTS[kind][self.method])
        values.update({k: v for k, v in dataclasses.asdict(self).items() if v is not None})
        cfg = TrainConfig(**values)
        if cfg.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {cfg.optimizer!r}: choose one of {OPTIMIZERS}")
        if cfg.ema_rate is None:
            cfg.ema_rate = ema_rate_for_run(cfg.steps, max_rate=EVAL_EMA_MAX[kind][cfg.method])
        if self.warmup_images is None and cfg.warmup_images:  # EDM's ramp, scaled to the run
            cfg.warmup_images = min(
                cfg.warmup_images, round(WARMUP_FRACTION * cfg.steps * cfg.batch_size)
            )
        return cfg

    def _check_network_fields(self, kind: str) -> None:
        if kind == "toy" and self.net is not None:
            raise ValueError(
                f"--net {self.net} selects an image network, but {self.data!r} is a 2D toy: "
                "toys use the MLP (hidden, depth)"
            )
        if kind == "image" and (self.hidden is not None or self.depth is not None):
            raise ValueError("hidden and depth size the toy MLP; image data uses --net")
        if self.net is not None and self.net not in NETS:
            raise ValueError(f"unknown --net {self.net!r}: choose one of {NETS}")


# ---------------------------------------------------------------------------------------
# Defaults per (data kind, method)
#
# Toys, on a laptop CPU (one to two minutes each), chosen by measurement on 8gaussians
# (energy distance of 1-, 2-, 4-step samples; see README, "What was tried"):
# - fourier_scale 0.02, iCT's value, for every consistency model: with CM's 16 the network
#   is reliable only on the training grid, and multistep sampling off the grid fails;
# - batch 2048: at 512 the gradient noise dominated (CD 1-step 3x worse at equal time);
# - iCT: the curriculum is scaled to the run (s1 = 80, not 1280: the paper's assumes 400k
#   steps) and the lognormal proposal centred at P_mean = 0 rather than -1.1, which gave
#   4x lower 1-step energy distance on 8gaussians (large t matter more for 2D toys).
_TOY_NET = dict(hidden=128, depth=3, dropout=0.0, optimizer="radam", warmup_images=0)
#
# Images follow the papers' CIFAR-10 settings (reference sheet §4, §7, §8, §11; CM Table 3):
#
#               DSM (EDM teacher)       CD                 CT                 iCT
#   steps K     400k                    800k               800k               400k
#   batch       128 (paper 512)         128 (paper 512)    128 (paper 512)    128 (paper 1024)
#   optimiser   Adam, lr 1e-3, ramped   RAdam, lr 4e-4     RAdam, lr 4e-4     RAdam, lr 1e-4
#               over 10M images
#   dropout     0.13                    0                  0                  0.3
#   Fourier     16                      16                 16                 0.02
#   d           l2, 1/c_out^2 weight    pseudo-Huber*      pseudo-Huber*      pseudo-Huber
#   grid        ln sigma ~ N(-1.2,      N = 18, Heun,      s0 = 2, s1 = 150,  s0 = 10, s1 = 1280,
#               1.2^2), continuous      mu = 0             mu0 = 0.9          P_mean -1.1, P_std 2
#   eval EMA    0.99929 (half-life      0.9999             0.9999             0.99993
#               0.5M images at 512)
#   network     "paper": CM's NCSN++, 56M parameters (use --net tiny on a CPU)
#
# Departures, each a flag away from the paper:
# - batch 128: one GPU's share with the paper network, and a CPU step stays short. With
#   torchrun, --batch-size is the global batch: 1024 over 8 GPUs is the iCT paper's;
# - * CD and CT use pseudo-Huber (c = 0.00054 sqrt(d)), iCT's replacement for LPIPS, since
#   LPIPS needs downloaded VGG weights; --distance lpips gives the paper's;
# - CD starts from random weights (the paper initialises it from the EDM teacher).
_IMAGE = dict(batch_size=128, net="paper", warmup_images=0)
_CM_IMAGE = dict(_IMAGE, optimizer="radam", lr=4e-4, steps=800_000, dropout=0.0,
                 fourier_scale=CM_FOURIER_SCALE, distance="pseudo_huber")  # fmt: skip

DEFAULTS: dict[str, dict[str, dict]] = {
    "toy": {
        "dsm": dict(_TOY_NET, steps=4000, batch_size=2048, lr=1e-3, fourier_scale=16.0,
                    distance="l2"),
        "cd": dict(_TOY_NET, steps=8000, batch_size=2048, lr=1e-3, fourier_scale=0.02, mu=0.95,
                   distance="l2"),
        "ct": dict(_TOY_NET, steps=6000, batch_size=2048, lr=1e-3, fourier_scale=0.02,
                   distance="l2", s0=2, s1=150),
        "ict": dict(_TOY_NET, steps=6000, batch_size=2048, lr=1e-3, fourier_scale=0.02,
                    distance="pseudo_huber", s0=10, s1=80, P_mean=0.0),
    },
    "image": {
        "dsm": dict(_IMAGE, optimizer="adam", lr=1e-3, steps=400_000, dropout=0.13,
                    fourier_scale=CM_FOURIER_SCALE, distance="l2", warmup_images=10_000_000),
        "cd": dict(_CM_IMAGE, mu=0.0),
        "ct": dict(_CM_IMAGE, s0=CT_S0, s1=CT_S1),
        "ict": dict(_IMAGE, optimizer="radam", lr=1e-4, steps=400_000, dropout=0.3,
                    fourier_scale=ICT_FOURIER_SCALE, distance="pseudo_huber", s0=ICT_S0,
                    s1=ICT_S1, P_mean=ICT_P_MEAN),
    },
}  # fmt: skip

# The evaluation EMA rate at the papers' run lengths (table above); a shorter run averages
# over a tenth of its steps instead (``ema_rate_for_run``).
EVAL_EMA_MAX: dict[str, dict[str, float]] = {
    "toy": dict.fromkeys(METHODS, 0.9999),
    "image": {"dsm": 0.5 ** (512 / 500_000), "cd": 0.9999, "ct": 0.9999, "ict": 0.99993},
}

# EDM ramps its learning rate up over 10M images of a 200M-image CIFAR-10 run (5%). A shorter
# run ramps over the same fraction of its images unless warmup_images is given.
WARMUP_FRACTION = 0.05

# Fields that may change when a run resumes; any other change is refused.
RESUMABLE_CHANGES = {"checkpoint_every", "bf16", "channels_last", "compile"}
RESUMABLE_CHANGES |= {"data_center", "data_scale"}  # recomputed from the data, identically


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


# ---------------------------------------------------------------------------------------
# Building a run's parts


def load_data(cfg: TrainConfig, device: torch.device):
    """The dataset: a toy, or an ``ImageData`` moved whole onto ``device``."""
    if data_kind(cfg.data) == "toy":
        return toy_data(cfg.data)
    with distributed.main_first():  # rank 0 downloads, the others then read its copy
        data = load_images(cfg.data, root=cfg.data_root, resolution=cfg.resolution)
    return data.to(device)  # batches are then indexed on the device (no DataLoader)


def data_shape(data) -> tuple[int, ...]:
    """(d,) for a toy, (C, H, W) for images."""
    return tuple(data.shape) if isinstance(data, ImageData) else (data.dim,)


def build_net(cfg: TrainConfig, shape: tuple[int, ...]) -> nn.Module:
    """F: the toy MLP for shape (d,), the U-Net preset ``cfg.net`` for (C, H, W)."""
    if len(shape) == 1:
        return ToyMLP(
            shape[0], cfg.hidden, cfg.depth, fourier_scale=cfg.fourier_scale, dropout=cfg.dropout
        )
    c, h, _ = shape
    return unet_preset(
        cfg.net, img_resolution=h, in_channels=c, out_channels=c, dropout=cfg.dropout,
        fourier_scale=cfg.fourier_scale, **(cfg.net_overrides or {}),
    )  # fmt: skip


def build_model(cfg: TrainConfig, shape: int | tuple[int, ...]) -> nn.Module:
    """F wrapped in its parameterisation: ``EDMDenoiser`` for DSM, else ``ConsistencyModel``."""
    net = build_net(cfg, (shape,) if isinstance(shape, int) else tuple(shape))
    return EDMDenoiser(net) if cfg.method == "dsm" else ConsistencyModel(net)


def build_optimizer(cfg: TrainConfig, params, device: torch.device) -> torch.optim.Optimizer:
    """RAdam (CM, iCT) or Adam (EDM), no weight decay. On CUDA the fused kernel where torch
    has one for that optimiser, else the foreach one; elsewhere torch's default."""
    cls = OPTIMIZERS[cfg.optimizer]
    kw = {}
    if device.type == "cuda":
        kw = {"fused": True} if "fused" in inspect.signature(cls).parameters else {"foreach": True}
    return cls(params, lr=cfg.lr, **kw)


def build_objective(cfg: TrainConfig, data, device: torch.device):
    """The loss object of ``cfg.method``."""
    distance = get_distance(cfg.distance)
    if isinstance(distance, nn.Module):  # LPIPS: its network goes where the batches are
        distance = distance.to(device)
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
    """CD's teacher: a trained DSM denoiser from ``teacher_dir`` (a run directory, or a
    shipped checkpoint's name or path, ``cmedu.pretrained``), else the exact mixture."""
    if teacher_dir is not None:
        teacher, _, shape = load_trained(teacher_dir, device=device)
        if not isinstance(teacher, EDMDenoiser):
            raise ValueError(f"--teacher {teacher_dir} is not a DSM (EDM denoiser) run")
        if shape != data_shape(data):
            raise ValueError(
                f"--teacher {teacher_dir} was trained on data of shape {shape}, "
                f"but this data has shape {data_shape(data)}"
            )
        return teacher.requires_grad_(False)
    if isinstance(data, GaussianMixture):
        return data
    raise ValueError(NO_TEACHER.format(data=repr(data)))


NO_TEACHER = (
    "CD needs a teacher: {data} has no closed-form score. Train one with "
    "`python -m cmedu train --method dsm --out TEACHER_DIR` (same --data) and pass "
    "--teacher TEACHER_DIR"
)


STANDARDIZED_TEACHER = (
    "--standardize trains on standardized data, but a --teacher run denoises data in its "
    "own units; use CD's exact mixture teacher, or CT / iCT"
)


def load_run(directory: str | Path, which: str = "ema", device="cpu"):
    """(model in eval mode, its TrainConfig, data shape) of a run directory.

    ``which`` = "ema" (default) or "online"; the shape is (d,) for toys, (C, H, W) for images.
    """
    state, config = load_checkpoint(directory)
    cfg = TrainConfig(**config)
    shape = stored_shape(state)
    model = build_model(cfg, shape)
    model.load_state_dict(state[which])
    return in_data_units(model, cfg).to(device).eval(), cfg, shape


def in_data_units(model: nn.Module, cfg: TrainConfig) -> nn.Module:
    """The model in data units: ``DataScaled`` when the run standardized its data."""
    return DataScaled(model, cfg.data_center, cfg.data_scale) if cfg.standardize else model


def load_trained(spec: str | Path, device="cpu"):
    """(model in eval mode, its TrainConfig, data shape) of a run directory (``load_run``,
    EMA weights) or of a shipped checkpoint's name or path (``cmedu.pretrained``)."""
    if has_checkpoint(spec):
        return load_run(spec, device=device)
    try:
        model, info = load_pretrained(spec, device=device, with_info=True)
    except FileNotFoundError as err:
        where = Path(spec) / CHECKPOINT
        raise FileNotFoundError(f"no checkpoint at {where} (a run directory), and {err}") from err
    return model, info["config"], info["shape"]


def load_model(directory: str | Path, which: str = "ema", device="cpu") -> torch.nn.Module:
    """The model of a run directory in eval mode: ``which`` = "ema" (default) or "online"."""
    return load_run(directory, which, device)[0]


# ---------------------------------------------------------------------------------------
# The loop


class Trainer:
    """Holds a run's state; ``steps()`` is the training loop.

    Parameters
    ----------
    config : TrainConfig
    out_dir : directory for checkpoints (None: keep nothing on disk). If it already holds a
        checkpoint, training resumes from it; its config must match.
    device : "cpu", "cuda", "mps" or None for the best available. Under ``torchrun`` each
        process takes GPU ``LOCAL_RANK`` and joins the process group (``cmedu.distributed``).
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
        if self.kind == "image" and cfg.method == "cd" and cfg.teacher is None:
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
        torch.manual_seed(cfg.seed)  # network initialisation: the same on every process
        self.model = build_model(cfg, self.shape).to(self.device)
        if self.dist.world_size > 1:
            torch.manual_seed(cfg.seed + self.dist.rank)  # dropout masks differ per process
        self.channels_last = self.kind == "image" and (
            cfg.channels_last if cfg.channels_last is not None else self.device.type == "cuda"
        )
        _set_memory_format(self.model, self.channels_last)
        self.ema = copy.deepcopy(self.model).eval().requires_grad_(False)
        self.objective = build_objective(cfg, self.data, self.device)
        _set_memory_format(getattr(self.objective, "teacher", None), self.channels_last)
        self.target = copy.deepcopy(self.model).requires_grad_(False)
        self.optimizer = build_optimizer(cfg, self.model.parameters(), self.device)
        self.step, self.losses = 0, []
        if has_checkpoint(self.out_dir):
            self._load()
        self.online = self._wrap(self.model)
        if self.kind == "image" and self.device.type == "cuda":
            torch.backends.cudnn.benchmark = True  # fixed shapes: pick the fastest convs
            torch.set_float32_matmul_precision("high")  # TF32 outside the bf16 autocast

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
            "target": self.target.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            **rngs[0],
            "rank_rngs": rngs,
            "losses": self.losses,
        }

    def _load(self) -> None:
        state, _ = load_checkpoint(self.out_dir)
        self.model.load_state_dict(state["online"])
        self.ema.load_state_dict(state["ema"])
        self.target.load_state_dict(state["target"])
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
        """One optimiser step of Algorithm 2/3 (or DSM); returns (loss, N)."""
        cfg, k = self.config, self.step
        x = self.batch_of_data()
        target = self.target if self.objective.uses_target else self.online
        if cfg.warmup_images:
            self._warm_up(k)
        with autocast(self.device, cfg.bf16):
            out = self.objective(self.online, target, x, k, self.generator)
        loss = distributed.mean(out.loss.detach())  # the same value on every process
        if not torch.isfinite(loss):
            raise TrainingDiverged(
                f"loss became {loss.item()} at step {k + 1} of {cfg.method} on {cfg.data}; "
                f"the last checkpoint ({_where(self.out_dir)}) is untouched. Try a lower --lr."
            )
        self.optimizer.zero_grad(set_to_none=True)
        out.loss.backward()  # DDP averages the gradients over the processes here
        self.optimizer.step()
        if self.objective.uses_target:
            ema_update(self.target, self.model, self.objective.target_mu(k))  # Eq. (8)
        ema_update(self.ema, self.model, cfg.ema_rate)
        self.step += 1
        return loss.item(), out.N

    def _warm_up(self, k: int) -> None:
        """EDM's learning-rate ramp: lr * min(1, images seen / warmup_images), at step k."""
        cfg = self.config
        ramp = min(1.0, (k + 1) * cfg.batch_size / cfg.warmup_images)
        for group in self.optimizer.param_groups:
            group["lr"] = cfg.lr * ramp

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
