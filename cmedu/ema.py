"""Exponential moving averages of parameters: the target network of Eq. (8) and the
evaluation EMA (Song et al. 2023, Sec. 4 and Table 3)."""

from __future__ import annotations

import torch
from torch import nn

from . import checks


@torch.no_grad()
def ema_update(ema: nn.Module, model: nn.Module, mu: float) -> None:
    """theta^- <- stopgrad(mu theta^- + (1 - mu) theta): Eq. (8), with foreach ops.

    Buffers (e.g. fixed embedding frequencies) are copied.
    """
    checks.check_number("mu", mu, 0.0, 1.0)
    ema_p = [p for p in ema.parameters()]
    model_p = [p.detach() for p in model.parameters()]
    if len(ema_p) != len(model_p):
        raise ValueError(f"ema: expected a copy of model ({len(model_p)} parameter tensors), "
                         f"got {len(ema_p)} parameter tensors")  # fmt: skip
    if mu == 0.0:
        torch._foreach_copy_(ema_p, model_p)
    else:
        torch._foreach_lerp_(ema_p, model_p, 1.0 - mu)
    for b_ema, b in zip(ema.buffers(), model.buffers()):
        b_ema.copy_(b)


def ema_rate_for_run(steps: int, fraction: float = 0.1, max_rate: float = 0.9999) -> float:
    """An evaluation EMA rate averaging over about ``fraction`` of a run of ``steps`` steps.

    The paper's 0.9999 (Table 3, CIFAR-10) averages over ~10,000 steps of an 800k-step run;
    a short run needs a shorter window: mu = 1 - 1 / (fraction * steps), capped at ``max_rate``.
    """
    return min(max_rate, max(0.0, 1.0 - 1.0 / max(fraction * steps, 1.0)))
