"""cmedu: Consistency Models (Song et al. 2023) and improved consistency training
(Song & Dhariwal 2024), from the mathematics up.

The top-level names below are the public API. Each top-level module is one concept of the
paper (``pfode``, ``solvers``, ``parameterization``, ``losses``, ...); the infrastructure
sits in sub-packages (``networks``, ``data``, ``training``, ``evaluation``, ``runtime``,
``course``). docs/architecture.md draws the layers and says where new code goes.
"""

from .constants import EPS, RHO, SIGMA_DATA, T
from .distances import LPIPSDistance, l1, pseudo_huber, squared_l2
from .editing import (
    colorize,
    denoise,
    inpaint,
    interpolate,
    stroke_edit,
    super_resolve,
    zero_shot_edit,
)
from .ema import ema_update
from .losses import (
    ConsistencyDistillation,
    ConsistencyTraining,
    DenoisingScoreMatching,
    ImprovedConsistencyTraining,
)
from .metrics import energy_distance
from .networks import ToyMLP
from .parameterization import ConsistencyModel, EDMDenoiser, c_in, c_noise, c_out, c_skip
from .pfode import (
    broadcast_time,
    denoiser_to_score,
    karras_timesteps,
    pf_ode_drift,
    prior_sample,
    score_to_denoiser,
)
from .runtime.device import autocast, default_device, make_generator
from .sampling import default_times, multistep_sample, sample, search_times
from .schedules import ct_mu, ct_N, ict_N, ict_weight, lognormal_index_probs
from .score_estimation import unbiased_score_estimate
from .sde import forward_sde_paths, reverse_sde_paths
from .solvers import euler_step, heun_step, reference_pf_ode, solve_pf_ode
from .toys import TOYS, GaussianMixture, SampleToy, toy_data
from .training import TrainConfig, Trainer, TrainingDiverged, TrainState, load_model, load_run
from .training.pretrained import load_pretrained

__all__ = [
    "EPS", "T", "RHO", "SIGMA_DATA",
    "GaussianMixture", "SampleToy", "toy_data", "TOYS",
    "forward_sde_paths", "reverse_sde_paths", "broadcast_time",
    "karras_timesteps", "pf_ode_drift", "prior_sample", "score_to_denoiser",
    "euler_step", "heun_step", "solve_pf_ode", "reference_pf_ode",
    "ConsistencyModel", "EDMDenoiser", "c_skip", "c_out", "c_in", "c_noise", "ToyMLP",
    "squared_l2", "l1", "pseudo_huber", "LPIPSDistance",
    "ConsistencyDistillation", "ConsistencyTraining", "ImprovedConsistencyTraining",
    "ct_N", "ct_mu", "ict_N", "ict_weight", "lognormal_index_probs",
    "DenoisingScoreMatching", "unbiased_score_estimate", "denoiser_to_score",
    "multistep_sample", "sample", "default_times", "search_times",
    "energy_distance", "ema_update",
    "TrainConfig", "Trainer", "TrainState", "TrainingDiverged", "load_model", "load_run",
    "load_pretrained",
    "default_device", "autocast", "make_generator",
    "zero_shot_edit", "inpaint", "colorize", "super_resolve", "stroke_edit", "denoise",
    "interpolate",
]  # fmt: skip
__version__ = "0.1.0"
