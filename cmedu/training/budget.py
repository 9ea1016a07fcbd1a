"""A run sized to a wall-clock budget: the number of steps K from the measured step time."""

from __future__ import annotations

import dataclasses
import statistics
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
