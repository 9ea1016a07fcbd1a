"""A run sized to a wall-clock budget: the number of steps K from the measured step time."""

from __future__ import annotations

import dataclasses
import statistics
import tempfile
import time

from .config import TrainConfig
from .loop import Trainer


@dataclasses.dataclass(frozen=True)
class Budget:
    """K steps fit ``minutes`` at ``step_seconds`` per step (median over ``probe`` steps)."""

    steps: int
    minutes: float
    step_seconds: float
    probe: int

    def __str__(self) -> str:
        return (
            f"{self.minutes:g} min: {self.steps} steps at {1000 * self.step_seconds:.1f} ms a "
            f"step (median of {self.probe} timed steps)"
        )


def steps_for_minutes(
    config: TrainConfig, minutes: float, *, data=None, device=None, probe: int = 20, warmup: int = 5
) -> Budget:
    """K = floor(60 minutes / s): s is the median time of one training step of ``config``,
    measured on a throwaway run (not saved) after ``warmup`` untimed steps. The schedules
    that depend on K (N(k), mu(k), the lr, the EMA) are then those of a K-step run."""
    if not minutes > 0:
        raise ValueError(f"minutes must be > 0, got {minutes}")
    trial = Trainer(dataclasses.replace(config, steps=warmup + probe), None, device, data)
    seconds = []
    for _ in range(warmup + probe):
        tic = time.perf_counter()
        trial.train_step()
        seconds.append(time.perf_counter() - tic)
    step_seconds = statistics.median(seconds[warmup:])
    return Budget(max(1, int(60 * minutes / step_seconds)), minutes, step_seconds, probe)


# The fields that ECT resolves for itself and DSM must resolve for itself (its lr, steps,
# distance, time distribution): left None in ECT's pretraining so that DSM takes its defaults.
DSM_OWN = ("steps", "lr", "distance", "P_mean", "P_std", "stage_steps")
PRETRAIN_SHARE = 0.5  # ECT's default share of a budget for its DSM start


@dataclasses.dataclass
class TimedRun:
    """A run trained to a budget: its ``Trainer``, its training seconds (both phases for
    ECT, probes excluded) and, for ECT, the DSM run it started from (``pretrain``)."""

    trainer: Trainer
    seconds: float
    pretrain: Trainer | None = None


def train_for_minutes(
    config: TrainConfig, minutes: float, *, data=None, device=None, progress=False,
    pretrain_share: float = PRETRAIN_SHARE,
) -> TimedRun:  # fmt: skip
    """Train ``config`` for about ``minutes`` of wall time, K from ``steps_for_minutes``: the
    way to compare methods at equal cost.

    ECT tunes a pretrained diffusion model (Geng et al. 2024). Without an ``init_from``, its
    denoiser is trained here first, by DSM on the same data for ``pretrain_share`` of the
    budget (in a temporary directory), and ECT starts from it for the rest; the seconds count
    both, so that ECT is charged for its pretraining. ``pretrain_share=0``: no pretraining,
    ECT tunes its random initialisation for the whole budget. Any other method trains for the whole
    budget from its own initialisation (CD's teacher is its config's: on toys the exact
    score, which costs nothing to train).
    """
    if not 0 <= pretrain_share < 1:
        raise ValueError(f"pretrain_share must be in [0, 1), got {pretrain_share}")

    def timed(cfg, share, out_dir=None):
        steps = steps_for_minutes(cfg, minutes * share, data=data, device=device).steps
        trainer = Trainer(dataclasses.replace(cfg, steps=steps), out_dir, device, data)
        tic = time.perf_counter()
        trainer.run(progress=progress)
        return trainer, time.perf_counter() - tic

    if config.method != "ect" or config.init_from is not None or pretrain_share == 0:
        return TimedRun(*timed(config, 1.0))
    scale = config.resolved().fourier_scale  # ECT's network: its frequencies are copied too
    dsm_config = dataclasses.replace(config, method="dsm", **dict.fromkeys(DSM_OWN),
                                     fourier_scale=scale)  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        dsm, dsm_seconds = timed(dsm_config, pretrain_share, tmp)
        ect, ect_seconds = timed(dataclasses.replace(config, init_from=tmp), 1 - pretrain_share)
    ect.config = dataclasses.replace(ect.config, init_from="DSM pretraining of this budget")
    return TimedRun(ect, dsm_seconds + ect_seconds, dsm)
