"""What defines a training run: ``TrainConfig``, its defaults per (data kind, method), and
the named presets.

Each field of ``TrainConfig`` carries its help text, its choices and its range in one
place (``option``); ``TrainConfig.resolved`` checks them and the command line
(``cmedu.cli``) is generated from them, so the two cannot drift.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path

from ..constants import (
    CD_N,
    CM_FOURIER_SCALE,
    CT_MU0,
    CT_S0,
    CT_S1,
    ECT_B,
    ECT_K,
    ECT_P_MEAN,
    ECT_P_STD,
    ECT_Q,
    ECT_STAGE_IMAGES,
    EDM_EMA_HALFLIFE_IMAGES,
    ICT_FOURIER_SCALE,
    ICT_P_MEAN,
    ICT_P_STD,
    ICT_S0,
    ICT_S1,
    MF_P_MEAN,
    MF_P_STD,
    MF_RATIO,
    MF_WEIGHT_C,
    MF_WEIGHT_P,
    SCM_P_MEAN,
    SCM_P_STD,
    SCM_TANGENT_C,
    SCM_WARMUP_STEPS,
)
from ..data.images import CIFAR10_NAMES, SYNTHETIC
from ..distances import DISTANCES, LPIPS
from ..ema import ema_rate_for_run
from ..networks.unet import UNET_PRESETS
from ..schedules import ECT_WEIGHTINGS, MU_VARIANTS
from ..solvers import SOLVERS

METHODS = ("dsm", "cd", "ct", "ict", "ect", "scm", "scd", "meanflow")
TEACHER_METHODS = ("cd", "scd")  # distillation: a teacher D_phi (a DSM run, or the mixture)
# Started from a DSM denoiser's weights: ECT always in its paper (Geng et al. 2024), CD on
# CIFAR-10 in Song et al. 2023 (their CIFAR-10 experiments initialise CD from the EDM).
INIT_METHODS = ("ect", "cd")
NETS = tuple(UNET_PRESETS)  # image networks F: tiny | small | paper
OPTIMIZERS = ("radam", "adam")  # classes in cmedu.training.build
LR_SCHEDULES = ("constant", "cosine")  # the learning rate over a run (Trainer._set_lr)
IMAGE_NAMES = (*CIFAR10_NAMES, SYNTHETIC)  # besides folders and .zip files


def option(default, help: str, *, choices=None, low=None, high=None, open_low=False,
           required=False, cli=True):  # fmt: skip
    """A ``TrainConfig`` field with its help, choices and range [low, high] (``open_low``:
    the low end excluded); ``required``: the command line asks for it; ``cli=False``: a
    field the run fills in itself (no option)."""
    meta = dict(help=help, choices=choices, low=low, high=high, open_low=open_low,
                required=required, cli=cli)  # fmt: skip
    return dataclasses.field(default=default, metadata=meta)


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

    # --- what to train on, and how long
    data: str = option("8gaussians", "named toy (8gaussians, ...), mixture .json, 'cifar10', "
                       "'synthetic-shapes', or an image folder or .zip of <class>/<image> (its "
                       "train/ split if it has one)", required=True)  # fmt: skip
    method: str = option("ict", "what to train: a DSM teacher or a consistency model",
                         choices=METHODS)  # fmt: skip
    steps: int | None = option(None, "total optimiser steps K (default: per method)", low=1)
    batch_size: int | None = option(None, "global batch, split evenly over torchrun processes "
                                    "(default: 2048 toys, 128 images)", low=1)  # fmt: skip
    lr: float | None = option(None, "learning rate (default: per method)", low=0, open_low=True)
    optimizer: str | None = option(None, "radam (CM, iCT) or adam (EDM teacher)",
                                   choices=OPTIMIZERS)  # fmt: skip
    lr_schedule: str | None = option(None, "constant (the papers') or cosine: lr decays to 0 "
                                     "over the run (default: constant; toys: cosine)",
                                     choices=LR_SCHEDULES)  # fmt: skip
    warmup_images: int | None = option(None, "DSM: ramp the lr up over this many images "
                                       "(default: 5%% of the run, at most 10M)", low=0)  # fmt: skip
    seed: int = option(0, "seed of the network initialisation and of every draw", low=0)
    teacher: str | None = option(None, "CD, sCD: directory of a DSM run, or a shipped "
                                 "teacher (e.g. cifar10-dsm-tiny); toys: the exact score if "
                                 "not given")  # fmt: skip
    init_from: str | None = option(None, "ECT, CD: a DSM run (or shipped denoiser) whose "
                                   "network F starts the model (same --net / --hidden, "
                                   "--depth, --fourier-scale); CD on CIFAR-10 starts from its "
                                   "teacher in the paper")  # fmt: skip
    # --- image data
    data_root: str | None = option(None, "cifar10: folder that holds or receives the download")
    resolution: int | None = option(None, "image folders: centre-crop and resize to this side",
                                    low=1)  # fmt: skip
    # --- the network F: the toy MLP (hidden, depth) or a U-Net preset for images (net)
    hidden: int | None = option(None, "toys: width of the MLP's hidden layers", low=1)
    depth: int | None = option(None, "toys: number of hidden layers of the MLP", low=1)
    net: str | None = option(None, "images: U-Net preset (default: paper)", choices=NETS)
    net_overrides: dict | None = option(None, "images: keyword overrides of the U-Net preset, "
                                        "as JSON, e.g. '{\"model_channels\": 64}'")  # fmt: skip
    fourier_scale: float | None = option(None, "std of the Fourier time-embedding frequencies "
                                         "(CM 16, iCT 0.02)", low=0, open_low=True)  # fmt: skip
    dropout: float | None = option(None, "dropout probability (default: per method; images: "
                                   "iCT 0.3, DSM 0.13)", low=0, high=1)  # fmt: skip
    # --- the method
    N: int = option(CD_N, "CD: number of grid points (Table 3: 18 on CIFAR-10)", low=2)
    solver: str = option("heun", "CD: the teacher's one-step ODE solver, Eq. (6)",
                         choices=tuple(SOLVERS))  # fmt: skip
    mu: float | None = option(None, "CD: target EMA rate, Eq. (8) (Table 3: 0 CIFAR-10, 0.95 "
                              "others)", low=0, high=1)  # fmt: skip
    s0: int | None = option(None, "CT / iCT: initial grid size of the schedule N(k)", low=1)
    s1: int | None = option(None, "CT / iCT: final grid size of the schedule N(k)", low=1)
    mu0: float | None = option(None, "CT: target EMA rate at k = 0 (Table 3: 0.9 CIFAR-10; "
                               "toys: 0, theta^- = stopgrad(theta))", low=0, high=1)  # fmt: skip
    P_mean: float | None = option(None, "iCT, ECT: mean of ln t (paper: -1.1); sCM: of "
                                  "ln(sigma_d tan t); MeanFlow: of logit t")  # fmt: skip
    P_std: float | None = option(None, "the std that goes with P_mean (iCT, ECT: 2.0)",
                                 low=0, open_low=True)  # fmt: skip
    mu_variant: str = option("paper", "CT: mu(k) as in the paper, or the official code's",
                             choices=MU_VARIANTS)  # fmt: skip
    distance: str | None = option(None, "the distance d of Eq. (7) / (10)",
                                  choices=(*DISTANCES, LPIPS))  # fmt: skip
    stage_steps: int | None = option(None, "ECT: steps per stage; Delta t = t - r shrinks by q "
                                     "at each stage", low=1)  # fmt: skip
    q: float = option(ECT_Q, "ECT: Delta t shrinks by this factor per stage", low=1,
                      open_low=True)  # fmt: skip
    ect_k: float = option(ECT_K, "ECT: k of n(t) = 1 + k sigmoid(-b t)", low=0)
    ect_b: float = option(ECT_B, "ECT: b of n(t) = 1 + k sigmoid(-b t)", low=0)
    weighting: str = option("dt", "ECT: weight w(t, r): 1/(t - r) (CIFAR-10 code) or "
                            "1/t^2 + 1/sigma_d^2 (later code)", choices=ECT_WEIGHTINGS)  # fmt: skip
    tangent_c: float = option(SCM_TANGENT_C, "sCM: c of the tangent normalisation "
                              "g / (||g|| + c)", low=0, open_low=True)  # fmt: skip
    warmup_steps: int | None = option(None, "sCM: tangent warm-up over this many steps "
                                      "(paper: 10k)", low=0)  # fmt: skip
    adaptive_weight: bool | None = option(None, "sCM: learn the weight w_phi(t), else w = 0 "
                                          "(default: images yes, toys no)")  # fmt: skip
    prior_weight: bool = option(True, "sCM: the prior weight 1 / (sigma_d tan t) on the tangent, "
                                "g = cos(t) df/dt (else g = sigma_d sin(t) df/dt)")  # fmt: skip
    ratio: float | None = option(None, "MeanFlow: fraction of (r, t) pairs with r != t",
                                 low=0, high=1)  # fmt: skip
    weight_p: float | None = option(None, "MeanFlow: p of the adaptive weight "
                                    "1 / (||Delta||^2 + c)^p", low=0)  # fmt: skip
    weight_c: float = option(MF_WEIGHT_C, "MeanFlow: c of the adaptive weight", low=0,
                             open_low=True)  # fmt: skip
    ema_rate: float | None = option(None, "evaluation EMA rate (default: adapted to --steps)",
                                    low=0, high=1)  # fmt: skip
    # --- data scale (cmedu.data_scale): train on (x - c) / s with s = std(x) / sigma_data
    standardize: bool = option(False, "train on (x - mean) / (std / 0.5): data of any scale "
                               "(cmedu.data_scale)")  # fmt: skip
    data_center: list | None = option(None, "c, filled from the data when standardize is on",
                                      cli=False)  # fmt: skip
    data_scale: float | None = option(None, "s, likewise", low=0, open_low=True, cli=False)
    checkpoint_every: int = option(1000, "write the checkpoint every this many steps", low=1)
    # --- how to run: may change when a run resumes
    bf16: bool = option(True, "CUDA: bfloat16 autocast (a no-op on other devices)")
    channels_last: bool | None = option(None, "images: NHWC memory layout (default: on CUDA)")
    compile: bool = option(False, "torch.compile the network")

    def resolved(self) -> TrainConfig:
        """Fill the ``None`` fields from ``DEFAULTS[data kind][method]``; check every field."""
        self.check()
        kind = data_kind(self.data)
        self._check_network_fields(kind)
        self._check_method_fields()
        values = dict(DEFAULTS[kind][self.method])
        values.update({k: v for k, v in dataclasses.asdict(self).items() if v is not None})
        cfg = TrainConfig(**values)
        if cfg.ema_rate is None:
            cfg.ema_rate = ema_rate_for_run(cfg.steps, max_rate=eval_ema_max(kind, cfg))
        if self.warmup_images is None and cfg.warmup_images:  # EDM's ramp, scaled to the run
            cfg.warmup_images = min(
                cfg.warmup_images, round(WARMUP_FRACTION * cfg.steps * cfg.batch_size)
            )
        cfg.check()
        return cfg

    def check(self) -> None:
        """A ``ValueError`` naming the first field outside its choices or range."""
        for f in dataclasses.fields(self):
            problem = field_problem(f, getattr(self, f.name))
            if problem:
                raise ValueError(f"{f.name}: {problem}")
        if self.s0 is not None and self.s1 is not None and self.s1 < self.s0:
            raise ValueError(f"s1 = {self.s1} is below s0 = {self.s0}: N(k) grows from s0 to s1")

    @classmethod
    def preset(cls, name: str, method: str, **overrides) -> TrainConfig:
        """A named preset for ``method`` (``PRESETS``), with ``overrides`` on top."""
        if name not in PRESETS:
            raise ValueError(f"unknown preset {name!r}: choose one of {tuple(PRESETS)}")
        return cls(method=method, **{**PRESETS[name][method], **overrides})

    def _check_method_fields(self) -> None:
        if self.standardize and self.method in ("scm", "scd", "meanflow"):
            raise ValueError(
                f"--standardize is for the sigma-time models; {self.method} fixes its own "
                "data scale (TrigFlow's sigma_d, MeanFlow's unit noise)"
            )
        if self.init_from is not None and self.method not in INIT_METHODS:
            raise ValueError(
                f"--init-from starts ECT or CD from a DSM run; {self.method} takes none"
            )

    def _check_network_fields(self, kind: str) -> None:
        if kind == "toy" and self.net is not None:
            raise ValueError(
                f"--net {self.net} selects an image network, but {self.data!r} is a 2D toy: "
                "toys use the MLP (hidden, depth)"
            )
        if kind == "image" and (self.hidden is not None or self.depth is not None):
            raise ValueError("hidden and depth size the toy MLP; image data uses --net")


def field_problem(f: dataclasses.Field, value) -> str | None:
    """What is wrong with ``value`` for the ``TrainConfig`` field ``f`` (None: nothing)."""
    meta = f.metadata
    if value is None or isinstance(value, (bool, dict, list)):
        return None
    if meta["choices"] is not None and value not in meta["choices"]:
        return f"expected one of {', '.join(map(str, meta['choices']))}, got {value!r}"
    if meta["low"] is None and meta["high"] is None:
        return None
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return f"expected a finite number, got {value!r}"
    low, high = meta["low"], meta["high"]
    too_low = low is not None and (value <= low if meta["open_low"] else value < low)
    if too_low or (high is not None and value > high):
        return f"expected a value in {interval(meta)}, got {value!r}"
    return None


def interval(meta) -> str:
    """The range of a field as text: [1, inf), (0, inf), [0, 1]."""
    low = "-inf" if meta["low"] is None else f"{meta['low']:g}"
    high = "inf" if meta["high"] is None else f"{meta['high']:g}"
    left = "(" if meta["open_low"] or meta["low"] is None else "["
    return f"{left}{low}, {high}{')' if meta['high'] is None else ']'}"


# ---------------------------------------------------------------------------------------
# Defaults per (data kind, method)
#
# Toys, on a laptop CPU, chosen by measurement on 8gaussians (energy distance of 1-, 2-,
# 4-step samples; see docs/defaults.md), then CD's and iCT's run lengths on the mixture
# family (benchmarks/mixture_benchmark.py): 16,000 steps, about 4 minutes on one thread,
# the most of the 5-minute budget; on family mixture 0, CD's one-step energy distance went
# from 6.8x (3,000 steps) to 2.5x (8,000) to 1.3x (16,000) the exact teacher's:
# - fourier_scale 0.02, iCT's value, for every consistency model: with CM's 16 the network
#   is reliable only on the training grid, and multistep sampling off the grid fails;
# - batch 2048: at 512 the gradient noise dominated (CD 1-step 3x worse at equal time);
# - iCT: the curriculum is scaled to the run (s1 = 80, not 1280: the paper's assumes 400k
#   steps) and the lognormal proposal centred at P_mean = 0 rather than -1.1, which gave
#   4x lower 1-step energy distance on 8gaussians (large t matter more for 2D toys).
_TOY_NET = dict(
    hidden=128, depth=3, dropout=0.0, optimizer="radam", warmup_images=0, lr_schedule="constant"
)
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
#   eval EMA    half-life 0.5M images   0.9999             0.9999             0.99993
#               (0.99982 at batch 128)
#   network     "paper": CM's NCSN++, 56M parameters (use --net tiny on a CPU)
#
# Departures, each a flag away from the paper:
# - batch 128: one GPU's share with the paper network, and a CPU step stays short. With
#   torchrun, --batch-size is the global batch: 1024 over 8 GPUs is the iCT paper's;
# - * CD and CT use pseudo-Huber (c = 0.00054 sqrt(d)), iCT's replacement for LPIPS, since
#   LPIPS needs downloaded VGG weights; --distance lpips gives the paper's;
# - CD starts from random weights unless --init-from names a DSM run; the paper initialises
#   it from the EDM teacher, and cifar10-cd-tiny was distilled that way
#   (--init-from cifar10-dsm-tiny, the same run as --teacher).
_IMAGE = dict(batch_size=128, net="paper", warmup_images=0, lr_schedule="constant")
_CM_IMAGE = dict(_IMAGE, optimizer="radam", lr=4e-4, steps=800_000, dropout=0.0,
                 fourier_scale=CM_FOURIER_SCALE, distance="pseudo_huber")  # fmt: skip

# ECT, sCM and MeanFlow on images (reference sheet §9, §10; sCM's App. G; py-meanflow's
# CIFAR-10 script). [P]: read in the paper; [C]: read in the official code; [U]: not verified.
#
#               ECT                      sCT / sCD                  MeanFlow
#   steps K     200k (25.6M images) [C]  400k [U]                   800k [C: 16k epochs]
#   batch       128 [C]                  128 (paper 512 [P])        128 (paper 1024 [C])
#   optimiser   RAdam, lr 1e-4 [C]       RAdam, lr 1e-4 [P]         Adam, lr 6e-4, ramped over
#                                        (paper beta2 0.99 [P])     10M images [C: 200 epochs]
#   dropout     0.2 [C]                  sCT 0.2, sCD 0 [P]         0.2 [C]
#   time embed  as the DSM teacher (16)  0.02, c_noise = t [P]      0.02 on (t, t - r)
#   times       ln t ~ N(-1.1, 2^2) [C]  ln(0.5 tan t) ~            logit t ~ N(-2, 2^2),
#                                        N(-1.0, 1.4^2) [P]         r != t for 75% [C]
#   schedule    stage = 25k steps, q = 2 warm-up 10k, c = 0.1 [P]   p = 0.75, c = 1e-3 [C]
#   weight      ||.||_2 / (t - r) [C]    adaptive w_phi(t) [P]      adaptive [C]
#   eval EMA    0.9999 [C]               half-life 0.5M images [P]  0.9999 (paper 0.99995 [U])
#   init        a DSM run (--init-from)  random (paper: the EMA     random [P]
#                                        teacher [P])
#
# Toys: the same methods at the toy size of the others (6000 steps, batch 2048), with the
# ECT stages an eighth of the run each (as in the CIFAR-10 script: 8 stages in 200k), sCM's
# warm-up a sixth, and MeanFlow at its CIFAR-10 (r, t) sampler and weight (below).
_TOY_SCM = dict(
    steps=6000,
    batch_size=2048,
    lr=1e-3,
    fourier_scale=ICT_FOURIER_SCALE,
    distance="l2",
    P_mean=SCM_P_MEAN,
    P_std=SCM_P_STD,
    warmup_steps=1000,
)
_IMAGE_SCM = dict(
    optimizer="radam",
    lr=1e-4,
    steps=400_000,
    dropout=0.2,
    fourier_scale=ICT_FOURIER_SCALE,
    distance="l2",
    P_mean=SCM_P_MEAN,
    P_std=SCM_P_STD,
    warmup_steps=SCM_WARMUP_STEPS,
    adaptive_weight=True,
)

DEFAULTS: dict[str, dict[str, dict]] = {
    "toy": {
        "dsm": dict(_TOY_NET, steps=4000, batch_size=2048, lr=1e-3, fourier_scale=CM_FOURIER_SCALE,
                    distance="l2"),
        "cd": dict(_TOY_NET, steps=16_000, batch_size=2048, lr=1e-3,
                   fourier_scale=ICT_FOURIER_SCALE, mu=0.95, distance="l2"),
        # CT's target is the online network on the toys (mu0 = 0, iCT's theta^- =
        # stopgrad(theta)): chosen on family mixtures 6 and 8 (1-step energy 0.70 -> 0.036 and
        # 1.52 -> 0.085 in 1000 small steps, against 0.68 and 1.49 with the paper's 0.9),
        # judged on mixtures 0-3 at 6000 steps: median 1-step energy 92x the teacher's
        # against about 1,600x, 2 steps 95x against about 370x
        # (benchmarks/results/mixtures-ct-mu0-2026-12-02.md)
        "ct": dict(_TOY_NET, steps=6000, batch_size=2048, lr=1e-3,
                   fourier_scale=ICT_FOURIER_SCALE, distance="l2", s0=CT_S0, s1=CT_S1, mu0=0.0),
        "ict": dict(_TOY_NET, steps=16_000, batch_size=2048, lr=1e-3,
                    fourier_scale=ICT_FOURIER_SCALE, distance="pseudo_huber", s0=ICT_S0, s1=80,
                    P_mean=0.0, P_std=ICT_P_STD),
        "ect": dict(_TOY_NET, steps=6000, batch_size=2048, lr=1e-3,
                    fourier_scale=ICT_FOURIER_SCALE, distance="l2_norm", stage_steps=750,
                    P_mean=ECT_P_MEAN, P_std=ECT_P_STD),
        # sCT on the toys without the learned weight (w = 0): chosen on family mixtures 4 and 5
        # among 8 settings (benchmarks/results/scm-toy-settings-2026-12-02.md)
        "scm": dict(_TOY_NET, **_TOY_SCM, adaptive_weight=False),
        "scd": dict(_TOY_NET, **_TOY_SCM, adaptive_weight=True),
        # MeanFlow's CIFAR-10 sampler and weight, chosen on family mixtures 4 and 5 among 7
        # settings (benchmarks/results/meanflow-toy-settings-2026-12-02.md): one-step energy
        # distance 10x and 16x the teacher's, against 206x and 94x with the ImageNet ones
        "meanflow": dict(_TOY_NET, steps=6000, batch_size=2048, lr=1e-3, fourier_scale=1.0,
                         distance="l2", P_mean=MF_P_MEAN, P_std=MF_P_STD, ratio=MF_RATIO,
                         weight_p=MF_WEIGHT_P),
    },
    "image": {
        "dsm": dict(_IMAGE, optimizer="adam", lr=1e-3, steps=400_000, dropout=0.13,
                    fourier_scale=CM_FOURIER_SCALE, distance="l2", warmup_images=10_000_000),
        "cd": dict(_CM_IMAGE, mu=0.0),
        "ct": dict(_CM_IMAGE, s0=CT_S0, s1=CT_S1, mu0=CT_MU0),
        "ict": dict(_IMAGE, optimizer="radam", lr=1e-4, steps=400_000, dropout=0.3,
                    fourier_scale=ICT_FOURIER_SCALE, distance="pseudo_huber", s0=ICT_S0,
                    s1=ICT_S1, P_mean=ICT_P_MEAN, P_std=ICT_P_STD),
        "ect": dict(_IMAGE, optimizer="radam", lr=1e-4, steps=200_000, dropout=0.2,
                    fourier_scale=CM_FOURIER_SCALE, distance="l2_norm",
                    stage_steps=ECT_STAGE_IMAGES // 128, P_mean=ECT_P_MEAN, P_std=ECT_P_STD),
        "scm": dict(_IMAGE, **_IMAGE_SCM),
        "scd": dict(_IMAGE, **{**_IMAGE_SCM, "dropout": 0.0}),
        "meanflow": dict(_IMAGE, optimizer="adam", lr=6e-4, steps=800_000, dropout=0.2,
                         fourier_scale=ICT_FOURIER_SCALE, distance="l2", P_mean=MF_P_MEAN,
                         P_std=MF_P_STD, ratio=MF_RATIO, weight_p=MF_WEIGHT_P,
                         warmup_images=10_000_000),
    },
}  # fmt: skip

# The evaluation EMA rate at the papers' run lengths (table above); a shorter run averages
# over a tenth of its steps instead (``ema_rate_for_run``). EDM's teacher and sCM (its App.
# G.2) give the EMA as a half-life in images (0.5M), so the per-step rate depends on the
# batch (``eval_ema_max``).
EVAL_EMA_MAX: dict[str, dict[str, float | None]] = {
    "toy": dict.fromkeys(METHODS, 0.9999),
    "image": {
        "dsm": None,
        "cd": 0.9999,
        "ct": 0.9999,
        "ict": 0.99993,
        "ect": 0.9999,
        "scm": None,
        "scd": None,
        "meanflow": 0.9999,
    },
}


def eval_ema_max(kind: str, cfg: TrainConfig) -> float:
    """The evaluation EMA rate of a run at the paper's length: ``EVAL_EMA_MAX``, or for the
    EDM teacher and sCM 0.5^(batch / 0.5M), a half-life of 0.5M images (Karras et al. 2022;
    Lu & Song 2024, App. G.2)."""
    rate = EVAL_EMA_MAX[kind][cfg.method]
    return 0.5 ** (cfg.batch_size / EDM_EMA_HALFLIFE_IMAGES) if rate is None else rate


# EDM ramps its learning rate up over 10M images of a 200M-image CIFAR-10 run (5%). A shorter
# run ramps over the same fraction of its images unless warmup_images is given.
WARMUP_FRACTION = 0.05

# Fields that may change when a run resumes; any other change is refused.
RESUMABLE_CHANGES = {"checkpoint_every", "bf16", "channels_last", "compile"}
RESUMABLE_CHANGES |= {"data_center", "data_scale"}  # recomputed from the data, identically

# ---------------------------------------------------------------------------------------
# Named presets: ``TrainConfig.preset(name, method, **overrides)``.
#
# "course-toy": the toy notebooks (02, 04-06). Batch 512 and the 8gaussians toy, so that a
# run of 3,000 steps takes about a minute on one CPU thread; a Fourier scale of 0.5 for the
# consistency models (1.0 for the DSM teacher) between CM's 16 and iCT's 0.02.
_COURSE_TOY = dict(data="8gaussians", batch_size=512, lr=1e-3, hidden=128, depth=3, seed=0)
PRESETS: dict[str, dict[str, dict]] = {
    "course-toy": {
        "dsm": dict(_COURSE_TOY, fourier_scale=1.0),
        "cd": dict(_COURSE_TOY, fourier_scale=0.5, N=CD_N, solver="heun", mu=0.95),
        "ct": dict(_COURSE_TOY, fourier_scale=0.5, mu0=CT_MU0, distance="l2"),
        "ict": dict(_COURSE_TOY, fourier_scale=0.5, distance="pseudo_huber", P_mean=0.0,
                    lr=5e-4),
    },
}  # fmt: skip
