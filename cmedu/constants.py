"""The papers' constants, each named and cited once.

Every other module imports these names; no number from a paper is written twice.

References
----------
- [CM] Song, Dhariwal, Chen, Sutskever. Consistency Models. ICML 2023.
- [iCT] Song, Dhariwal. Improved Techniques for Training Consistency Models. ICLR 2024.
- [EDM] Karras, Aittala, Aila, Laine. Elucidating the Design Space of Diffusion-Based
  Generative Models. NeurIPS 2022.
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

SQRT2 = math.sqrt(2.0)
