"""Discretisation and EMA schedules of consistency training.

``ct_N`` and ``ct_mu`` are the schedules N(k), mu(k) of the original CT (Song et al. 2023,
App. C); ``ict_N``, ``lognormal_index_probs`` and ``ict_weight`` are those of improved CT
(Song & Dhariwal 2024, Sec. 3.4-3.5); ``ect_stage``, ``ect_r`` and ``ect_weight`` the
shrinking Delta t = t - r of easy consistency tuning (ECT, Geng et al. 2024). k counts
optimiser steps from 0; K is the total.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from . import checks
from .constants import (
    CT_MU0,
    CT_S0,
    CT_S1,
    ECT_B,
    ECT_K,
    ECT_Q,
    ICT_P_MEAN,
    ICT_P_STD,
    ICT_S0,
    ICT_S1,
    SIGMA_DATA,
    SQRT2,
)

MU_VARIANTS = ("paper", "code")
ECT_WEIGHTINGS = ("dt", "snr")


def ct_N(k: int, K: int, s0: int = CT_S0, s1: int = CT_S1) -> int:
    """N(k) = ceil(sqrt(k/K ((s1 + 1)^2 - s0^2) + s0^2) - 1) + 1  (App. C, Song et al. 2023).

    Grows from N(0) = s0 to N(K) = s1 + 1.
    """
    _check_schedule(k, K, s0, s1)
    return math.ceil(math.sqrt(k / K * ((s1 + 1) ** 2 - s0**2) + s0**2) - 1) + 1


def ct_mu(
    k: int, K: int, s0: int = CT_S0, s1: int = CT_S1, mu0: float = CT_MU0, variant="paper"
) -> float:
    """Target-network EMA rate mu(k) of CT (App. C, Song et al. 2023).

    ``variant="paper"``: mu(k) = exp(s0 ln(mu0) / N(k)), so mu(0) = mu0 (the paper's formula).
    ``variant="code"``: exp(s0 ln(mu0) / (N(k) - 1)) as in both official repositories,
    which gives mu0^2 = 0.81 at k = 0 on CIFAR-10. The paper's is the default here.
    """
    checks.check_number("mu0", mu0, 0.0, 1.0)
    if variant not in MU_VARIANTS:
        raise ValueError(f"mu variant must be one of {MU_VARIANTS}, got {variant!r}")
    if mu0 == 0.0:
        return 0.0  # theta^- = stopgrad(theta), as in iCT
    N = ct_N(k, K, s0, s1)
    return math.exp(s0 * math.log(mu0) / (N if variant == "paper" else N - 1))


def ict_N(k: int, K: int, s0: int = ICT_S0, s1: int = ICT_S1) -> int:
    """N(k) = min(s0 2^floor(k / K'), s1) + 1, K' = floor(K / (log2 floor(s1/s0) + 1)).

    The exponential ("doubling") curriculum of iCT (Song & Dhariwal 2024, Sec. 3.4).
    """
    _check_schedule(k, K, s0, s1)
    K_prime = math.floor(K / (math.log2(math.floor(s1 / s0)) + 1))
    return min(s0 * 2 ** math.floor(k / max(K_prime, 1)), s1) + 1


def lognormal_index_probs(
    ts: Tensor, P_mean: float = ICT_P_MEAN, P_std: float = ICT_P_STD
) -> Tensor:
    """p(n) for n = 1..N-1 (index 0..N-2 here) over pairs (t_n, t_{n+1}) of an ascending grid.

        p(t_n) ∝ erf((ln t_{n+1} - P_mean) / (√2 P_std)) - erf((ln t_n - P_mean) / (√2 P_std))

    the probability that ln t ~ N(P_mean, P_std^2) falls in [t_n, t_{n+1}]
    (iCT, Song & Dhariwal 2024, Sec. 3.5). Returns shape (N-1,), summing to 1.
    """
    checks.check_number("P_std", P_std, 1e-12)
    if not isinstance(ts, Tensor) or ts.ndim != 1 or len(ts) < 2:
        raise ValueError(f"ts: expected an ascending grid of shape (N,), N >= 2, got {ts!r}")
    if not bool((ts > 0).all() and (ts[1:] > ts[:-1]).all()):
        raise ValueError(f"ts: expected positive, strictly ascending times, got {ts.tolist()}")
    cdf = torch.erf((torch.log(ts.double()) - P_mean) / (SQRT2 * P_std))
    p = cdf[1:] - cdf[:-1]
    return p / p.sum()


def ict_weight(t: Tensor, t_next: Tensor) -> Tensor:
    """lambda(t_n) = 1 / (t_{n+1} - t_n) (iCT, Song & Dhariwal 2024, Sec. 3.5)."""
    return 1 / (t_next - t)


def truncated_lognormal(B: int, P_mean: float, P_std: float, lo: float, hi: float,
                        generator=None) -> Tensor:  # fmt: skip
    """t with ln t ~ N(P_mean, P_std^2) conditioned on lo < t <= hi, shape (B,), float64:
    the lognormal proposal of iCT and ECT (Song & Dhariwal 2024, Sec. 3.5; Geng et al.
    2024) kept inside a model's time range, by inverting the normal CDF."""
    checks.check_number("P_std", P_std, 1e-12)
    device = generator.device if generator is not None else torch.device("cpu")
    a, b = (torch.special.ndtr(torch.tensor((math.log(v) - P_mean) / P_std, dtype=torch.float64))
            for v in (lo, hi))  # fmt: skip
    u = torch.rand(B, generator=generator, device=device, dtype=torch.float64)
    u = (a + u * (b - a)).clamp(torch.finfo(torch.float64).tiny, 1.0)
    return torch.exp(P_mean + P_std * torch.special.ndtri(u)).clamp(lo, hi)


def ect_stage(k: int, stage_steps: int) -> int:
    """The stage a = floor(k / stage_steps) of ECT's schedule (Geng et al. 2024): Delta t
    shrinks by q at each stage (locuslab/ect ``training/ct_training_loop.py``: stage =
    cur_tick // double_ticks, ``--double=250`` ticks of 12.8k images on CIFAR-10)."""
    checks.check_count("k", k, 0)
    checks.check_count("stage_steps", stage_steps, 1)
    return k // stage_steps


def ect_r(t: Tensor, stage: int, q: float = ECT_Q, k: float = ECT_K, b: float = ECT_B) -> Tensor:
    """r = max(0, t (1 - n(t) / q^(a+1))), n(t) = 1 + k sigmoid(-b t): ECT's mapping from t
    to the earlier time r at stage a (Geng et al. 2024, its mapping function p(r | t); read in
    locuslab/ect ``training/loss.py``, ``ECMLoss.t_to_r_sigmoid``).

    At stage 0, r = 0 for every t with n(t) >= q: training starts as diffusion (the target
    is the data itself); Delta t = t - r then halves (q = 2) at each stage, towards 0, the
    continuous-time limit of the consistency condition.
    """
    n = 1 + k * torch.sigmoid(-b * t)  # $n(t) = 1 + k\,\sigma(-b t)$
    return (t * (1 - n / q ** (stage + 1))).clamp_min(0)  # $r = t (1 - n(t) / q^{a+1})$


def ect_weight(t: Tensor, r: Tensor, kind: str = "dt", sigma_data: float = SIGMA_DATA) -> Tensor:
    """ECT's weight (Geng et al. 2024): ``"dt"``, 1 / (t - r), as the CIFAR-10 code of the
    paper divides the loss (locuslab/ect ``training/loss.py`` at commit 683854a);
    ``"snr"``, 1/t^2 + 1/sigma_data^2 = EDM's 1 / c_out^2 (Karras et al. 2022, Table 1), the
    later ECT code's "snrpk" weighting (``ECMLoss.snrplusk_wt``; ImageNet, EDM2)."""
    if kind == "dt":
        return 1 / (t - r)
    if kind == "snr":
        return (t**2 + sigma_data**2) / (t * sigma_data) ** 2
    raise ValueError(f"unknown ECT weighting {kind!r}: choose one of {ECT_WEIGHTINGS}")


def _check_schedule(k: int, K: int, s0: int, s1: int) -> None:
    """Step k >= 0 of K >= 1 total, and the grid sizes 1 <= s0 <= s1."""
    checks.check_count("k", k, 0)
    checks.check_count("K", K, 1, "the total number of training steps")
    checks.check_count("s0", s0, 1)
    checks.check_count("s1", s1, s0, "s1 >= s0: the schedule grows")
