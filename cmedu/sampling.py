"""Sampling from a consistency model: one step and multistep (Algorithm 1, Song et al. 2023).

``sample`` also draws from the later one-step models with their own samplers, where their
time variable is not EDM's sigma: sCM's TrigFlow consistency models (``trigflow_sample``,
Lu & Song 2024) and MeanFlow (``meanflow_sample``, Geng et al. 2025). ``times_for`` gives
each model's default time points.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import checks
from .constants import EPS, RHO, T
from .meanflow import meanflow_sample, meanflow_times
from .parameterization import AverageVelocityModel, TrigFlowModel
from .pfode import karras_timesteps, prior_sample, time_range
from .trigflow import trigflow_sample, trigflow_times


def default_times(steps: int, eps: float = EPS, T: float = T, rho: float = RHO) -> Tensor:
    """Time points tau for ``steps``-step sampling when none are chosen: T, then the
    interior points of a descending Karras grid with steps + 1 points (float64, shape (steps,)).

    Two steps give (80, 2.52). The paper picks tau by a greedy search on FID (Sec. 3);
    ``cmedu.sampling.search_times`` does the same for any quality measure.
    """
    checks.check_count("steps", steps, 1, "one step is f(x_T, T)")
    return karras_timesteps(steps + 1, eps, T, rho).flip(0)[:-1]


@torch.no_grad()
def multistep_sample(
    model,
    x_T: Tensor,
    ts,
    generator: torch.Generator | None = None,
    clip: tuple[float, float] | None = None,
    eps: float | None = None,
    T: float | None = None,
    return_all: bool = False,
) -> Tensor:
    """Multistep consistency sampling, Algorithm 1 of Song et al. 2023.

    Parameters
    ----------
    model : callable
        The consistency model f_theta(x, t).
    x_T : Tensor, shape (B, *D)
        Initial noise ~ N(0, T^2 I).
    ts : sequence of float, strictly descending, in [eps, T]
        ts[0] is the time of x_T (T), ts[1:] are tau_1 > tau_2 > ... at which noise is
        re-added. One step is ``ts = [T]``.
    clip : (float, float), optional
        Clamp each f output to (low, high) (images: (-1, 1)).
    eps, T : float, optional
        The time range; default: the model's own (``pfode.time_range``).
    return_all : bool
        Also return the sample after every step, shape (len(ts), B, *D).
    """
    eps, T = time_range(model, eps, T)
    ts = checks.check_times("ts", ts, eps, T, descending=True)
    checks.check_model_input("x_T", x_T, model)
    checks.check_finite("x_T", x_T)
    checks.check_clip(clip)
    clamp = (lambda y: y.clamp(*clip)) if clip is not None else (lambda y: y)
    x = clamp(model(x_T, float(ts[0])))  # $x \leftarrow f_\theta(x_T, T)$
    outs = [x]
    for tau in ts[1:].tolist():
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        x_tau = (
            x + (tau**2 - eps**2) ** 0.5 * z
        )  # $x_{\tau_n} = x + \sqrt{\tau_n^2 - \epsilon^2} z$
        x = clamp(model(x_tau, tau))  # $x \leftarrow f_\theta(x_{\tau_n}, \tau_n)$
        outs.append(x)
    return torch.stack(outs) if return_all else x


def times_for(model, steps: int) -> Tensor:
    """The default ``steps``-step time points of ``model``: ``default_times`` for the models
    of Song et al. 2023 (Algorithm 1), ``trigflow_times`` for sCM (Lu & Song 2024),
    ``meanflow_times`` for MeanFlow (Geng et al. 2025)."""
    if isinstance(model, TrigFlowModel):
        return trigflow_times(steps, model.T, model.sigma_d)
    if isinstance(model, AverageVelocityModel):
        return meanflow_times(steps)
    return default_times(steps, *time_range(model))


def sample(
    model,
    shape,
    steps: int = 1,
    ts=None,
    generator: torch.Generator | None = None,
    device=None,
    clip=None,
    T: float | None = None,
    eps: float | None = None,
) -> Tensor:
    """Draw ``shape[0]`` samples with ``steps``-step consistency sampling (Algorithm 1).

    ``ts`` overrides the default time points (``default_times(steps)``); the initial noise
    is N(0, ts[0]^2 I). ``T`` and ``eps`` default to the model's own time range (its ``T``
    and ``eps`` attributes, e.g. ``cmedu.data_scale.DataScaled``), else the paper's.
    A ``TrigFlowModel`` or ``AverageVelocityModel`` is sampled by its own sampler from its
    own prior (``_sample_flow``; Lu & Song 2024, Geng et al. 2025).
    """
    checks.check_count("steps", steps, 1, "one step is f(x_T, T)")
    shape = checks.check_shape("shape", shape)
    checks.check_model_input("shape", shape, model)
    if isinstance(model, (TrigFlowModel, AverageVelocityModel)):
        ts = times_for(model, steps) if ts is None else ts
        return _sample_flow(model, shape, ts, generator, device, clip)
    eps, T = time_range(model, eps, T)
    ts = default_times(steps, eps, T) if ts is None else checks.check_times("ts", ts, eps, T)
    x_T = prior_sample(shape, float(ts[0]), generator=generator, device=device)
    return multistep_sample(model, x_T, ts, generator=generator, clip=clip, eps=eps, T=T)


def _sample_flow(model, shape, ts, generator, device, clip) -> Tensor:
    """sCM's x_T ~ N(0, sigma_d^2 I) then ``trigflow_sample``, or MeanFlow's z_1 ~ N(0, I)
    then ``meanflow_sample``."""
    std = model.sigma_d if isinstance(model, TrigFlowModel) else 1.0
    z = prior_sample(shape, std, generator=generator, device=device)
    if isinstance(model, TrigFlowModel):
        return trigflow_sample(model, z, ts, generator=generator, clip=clip)
    return meanflow_sample(model, z, ts, clip=clip)


def search_times(quality, steps: int, eps: float = EPS, T: float = T, iters: int = 12) -> list:
    """Greedy ternary search of the time points tau_1 > tau_2 > ... (Song et al. 2023, Sec. 3).

    ``quality(ts) -> float`` scores a list of times (lower is better, e.g. FID or energy
    distance; use a fixed seed inside it so the comparison is fair). Each new tau is found
    by ternary search on ln t in (eps, previous tau), assuming the quality is unimodal in
    it, as the paper does. Returns the list [T, tau_1, ..., tau_{steps-1}].
    """
    import math

    checks.check_count("steps", steps, 1)
    checks.check_count("iters", iters, 1)
    if not 0 < eps < T:
        raise ValueError(f"eps, T: expected 0 < eps < T, got eps={eps}, T={T}")
    ts = [T]
    for _ in range(steps - 1):
        a, b = math.log(eps), math.log(ts[-1])
        for _ in range(iters):
            m1, m2 = a + (b - a) / 3, b - (b - a) / 3
            if quality([*ts, math.exp(m1)]) < quality([*ts, math.exp(m2)]):
                b = m2
            else:
                a = m1
        ts.append(math.exp((a + b) / 2))
    return ts
