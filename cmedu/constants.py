"""The papers' constants, each named and cited once.

Every other module imports these names; no number from a paper is written twice.

References
----------
- [CM] Song, Dhariwal, Chen, Sutskever. Consistency Models. ICML 2023.
- [iCT] Song, Dhariwal. Improved Techniques for Training Consistency Models. ICLR 2024.
- [EDM] Karras, Aittala, Aila, Laine. Elucidating the Design Space of Diffusion-Based
  Generative Models. NeurIPS 2022.
- [ECT] Geng, Pokle, Luo, Lin, Kolter. Consistency Models Made Easy. ICLR 2025
  (arXiv 2406.14548; code locuslab/ect).
- [sCM] Lu, Song. Simplifying, Stabilizing and Scaling Continuous-Time Consistency Models.
  ICLR 2025 (arXiv 2410.11081).
- [MF] Geng, Deng, Bai, Kolter, He. Mean Flows for One-step Generative Modeling. NeurIPS 2025
  (arXiv 2505.13447; code Gsunshine/py-meanflow).

Tags as in the reference sheet: [P] read in the paper, [C] read in the official code (or, for
MeanFlow, in forks of it that keep its argument parser and scripts), [U] not verified here.
"""

import math

# Time horizon of the PF-ODE, t in [EPS, T]; t is the noise standard deviation. [CM] Sec. 4.
EPS = 0.002
T = 80.0
# Curvature of the Karras time grid. [CM] Sec. 4, [EDM] Eq. (5).
RHO = 7.0
# Standard deviation of the data (pixels in [-1, 1]) used by the preconditioning. [CM] App. C.
SIGMA_DATA = 0.5

# Time embedding of the CIFAR-10 NCSN++ in CM / Score-SDE: Gaussian Fourier features of
# scale 16 (reference sheet §2, §7; JAX code ``fourier_scale = 16``).
CM_FOURIER_SCALE = 16.0

# Consistency distillation on CIFAR-10: N = 18 grid points, Heun teacher steps (Table 3 of [CM]).
CD_N = 18

# Original consistency training schedules, CIFAR-10 (Table 3, App. C of [CM]).
CT_S0 = 2
CT_S1 = 150
CT_MU0 = 0.9

# Improved consistency training ([iCT] Sec. 3-4, CIFAR-10 settings).
ICT_S0 = 10  # initial number of discretisation steps
ICT_S1 = 1280  # final number of discretisation steps
ICT_P_MEAN = -1.1  # lognormal proposal over noise levels: mean of ln t
ICT_P_STD = 2.0  # ... and its standard deviation
ICT_HUBER_C_PER_SQRT_DIM = 0.00054  # pseudo-Huber c = 0.00054 * sqrt(d)
ICT_FOURIER_SCALE = 0.02  # time-embedding scale, cut from CM's 16 (ref. sheet §8)

# EDM denoiser training ([EDM] Table 1, Sec. 5): ln sigma ~ N(P_mean, P_std^2).
EDM_P_MEAN = -1.2
EDM_P_STD = 1.2
# EDM's evaluation EMA: a half-life of 0.5M training images, whatever the batch size ([EDM]'s
# CIFAR-10 setting, ``ema_halflife_kimg = 500`` in its code; reference sheet §7).
EDM_EMA_HALFLIFE_IMAGES = 500_000

# Scale of the noise-level input to the network, c_noise(t) = 0.25 ln t ([EDM] Table 1).
C_NOISE_SCALE = 0.25

# Easy consistency tuning ([ECT] code ``ct_train.py`` / ``run_ecm.sh``, CIFAR-10) [C].
ECT_P_MEAN = -1.1  # ln t ~ N(P_mean, P_std^2), iCT's proposal
ECT_P_STD = 2.0
ECT_Q = 2.0  # Delta t shrinks by q at each stage
ECT_K = 8.0  # n(t) = 1 + k sigmoid(-b t), the mapping function's adjustment
ECT_B = 1.0
# A stage lasts 250 ticks of 12.8k images, 25k iterations at batch 128 (``--double=250``).
ECT_STAGE_IMAGES = 3_200_000
ECT_TWO_STEP_T = 0.821  # the intermediate time of 2-step sampling (``--mid_t``)

# Continuous-time consistency models ([sCM] Sec. 3-4, App. G.2) [P].
SCM_TANGENT_C = 0.1  # tangent normalisation g / (||g|| + c), Sec. 4.2, App. G.2
SCM_WARMUP_STEPS = 10_000  # tangent warm-up: r rises from 0 to 1 over H iterations, Sec. 4.2
SCM_TWO_STEP_T = 1.1  # the intermediate TrigFlow time of 2-step sampling, Sec. 5.2
SCM_P_MEAN = -1.0  # ln(sigma_d tan t) ~ N(P_mean, P_std^2), CIFAR-10 sCT and sCD, App. G.2
SCM_P_STD = 1.4

# MeanFlow ([MF] Sec. 4.3; CIFAR-10 settings of py-meanflow's ``scripts/cifar10_v0.sh`` and
# ``train_arg_parser.py``) [C]; c = 1e-3 is also the paper's example value (Sec. 4.3) [P].
MF_P_MEAN = -2.0  # logit-normal (r, t) sampler: t = sigmoid(N(P_mean, P_std^2))
MF_P_STD = 2.0
MF_RATIO = 0.75  # fraction of pairs with r != t
MF_WEIGHT_P = 0.75  # adaptive loss weight w = 1 / (||Delta||^2 + c)^p
MF_WEIGHT_C = 1e-3

SQRT2 = math.sqrt(2.0)
