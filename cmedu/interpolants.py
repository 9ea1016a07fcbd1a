"""Interpolations between data and noise, with the exact ground truth of a Gaussian mixture
under each: TrigFlow (sCM, Lu & Song 2024) and the linear path of flow matching and MeanFlow
(Geng et al. 2025).

Both write a noisy point as

    x_t = alpha(t) x_0 + sigma(t) z,    x_0 ~ p_data,  z ~ N(0, c^2 I),

TrigFlow with alpha = cos t, sigma = sin t, c = sigma_d, t in [0, pi/2] (Lu & Song 2024,
Sec. 3), the linear path with alpha = 1 - t, sigma = t, c = 1, t in [0, 1] (Geng et al. 2025,
Sec. 3). A mixture component N(m_k, s_k^2 I) stays Gaussian, N(alpha m_k, (alpha^2 s_k^2 +
sigma^2 c^2) I), so the marginal p_t, the denoiser E[x_0 | x_t] and the velocity field

    v(x, t) = E[dx_t/dt | x_t = x] = alpha'(t) E[x_0 | x] + sigma'(t) E[z | x]

(the PF-ODE dx_t/dt = v(x_t, t) of both papers) are exact at every t. The flow of that ODE,
and with it the consistency function and MeanFlow's average velocity

    u(z_t, r, t) = 1/(t - r) int_r^t v(z_s, s) ds = (z_t - z_r) / (t - r)   (Geng et al.
    2025, Eq. (3)),

are integrated by ``scipy.integrate.solve_ivp`` at tight tolerances: the reference solver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy.integrate import solve_ivp
from torch import Tensor

from .constants import SIGMA_DATA
from .pfode import broadcast_time
from .toys import GaussianMixture


@dataclass(frozen=True)
class Interpolation:
    """x_t = alpha(t) x_0 + sigma(t) z with z ~ N(0, noise_std^2 I), t in [0, t_max].

    ``kind`` is "trigflow" (Lu & Song 2024, Sec. 3) or "linear" (Geng et al. 2025, Sec. 3).
    """

    kind: str
    noise_std: float  # c: sigma_d for TrigFlow, 1 for the linear path
    t_max: float  # pi/2 for TrigFlow, 1 for the linear path

    def coefficients(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """alpha(t), sigma(t) and their derivatives: TrigFlow (Lu & Song 2024, Sec. 3) or
        the linear path (Geng et al. 2025, Sec. 3)."""
        if self.kind == "trigflow":
            return t.cos(), t.sin(), -t.sin(), t.cos()
        return 1 - t, t, -torch.ones_like(t), torch.ones_like(t)

    def noisy(self, x0: Tensor, z: Tensor, t) -> Tensor:
        """x_t = alpha(t) x_0 + sigma(t) z: TrigFlow (Lu & Song 2024, Sec. 3) or the linear
        path (Geng et al. 2025, Sec. 3). z already carries its std c."""
        a, s, _, _ = self.coefficients(broadcast_time(t, x0))
        return a * x0 + s * z

    def conditional_velocity(self, x0: Tensor, z: Tensor, t) -> Tensor:
        """dx_t/dt = alpha'(t) x_0 + sigma'(t) z: cos t z - sin t x_0 for TrigFlow (Lu &
        Song 2024, Sec. 3), z - x_0 for the linear path (Geng et al. 2025, Sec. 3)."""
        _, _, da, ds = self.coefficients(broadcast_time(t, x0))
        return da * x0 + ds * z


def trigflow(sigma_d: float = SIGMA_DATA) -> Interpolation:
    """TrigFlow: x_t = cos(t) x_0 + sin(t) z, z ~ N(0, sigma_d^2 I), t in [0, pi/2]
    (Lu & Song 2024, Sec. 3)."""
    return Interpolation("trigflow", sigma_d, math.pi / 2)


def linear() -> Interpolation:
    """The linear path z_t = (1 - t) x + t eps, eps ~ N(0, I), t in [0, 1]: flow matching and
    MeanFlow (Geng et al. 2025, Sec. 3)."""
    return Interpolation("linear", 1.0, 1.0)


def _components(mixture: GaussianMixture, path: Interpolation, x: Tensor, t):
    """Posterior component weights r_k (..., K), each component's alpha m_k (..., K, d), its
    variance v_k = alpha^2 s_k^2 + sigma^2 c^2 (..., K) and alpha, sigma (..., 1)."""
    m, s, w = (p.to(dtype=x.dtype, device=x.device) for p in (mixture.means, mixture.stds,
                                                              mixture.weights))  # fmt: skip
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    t = t.expand(x.shape[:-1]).unsqueeze(-1) if t.ndim else t.expand(x.shape[:-1] + (1,))
    a, sig, _, _ = path.coefficients(t)
    var = a**2 * s**2 + sig**2 * path.noise_std**2  # (..., K)
    mean = a.unsqueeze(-1) * m  # (..., K, d)
    sq = ((x.unsqueeze(-2) - mean) ** 2).sum(-1)
    log_c = torch.log(w) - 0.5 * mixture.dim * torch.log(2 * math.pi * var) - 0.5 * sq / var
    return log_c, mean, var, a, sig


def log_prob(mixture: GaussianMixture, path: Interpolation, x: Tensor, t) -> Tensor:
    """log p_t(x) of x_t = alpha x_0 + sigma z: a mixture of N(alpha m_k, (alpha^2 s_k^2 +
    sigma^2 c^2) I) (TrigFlow, Lu & Song 2024, Sec. 3; linear, Geng et al. 2025, Sec. 3).

    x : (..., d); t a scalar or shape x.shape[:-1]. Returns shape x.shape[:-1].
    """
    return torch.logsumexp(_components(mixture, path, x, t)[0], dim=-1)


def posterior_means(mixture: GaussianMixture, path: Interpolation, x: Tensor, t):
    """(E[x_0 | x_t = x], E[z | x_t = x]), each shaped like x, from each component's
    Gaussian posterior (Lu & Song 2024, Sec. 3; Geng et al. 2025, Sec. 3).

    Per component: E[x_0] = m_k + alpha s_k^2 / v_k (x - alpha m_k) and
    E[z] = sigma c^2 / v_k (x - alpha m_k), with v_k the component's variance at t.
    """
    log_c, mean, var, a, sig = _components(mixture, path, x, t)
    r = torch.softmax(log_c, dim=-1).unsqueeze(-1)  # (..., K, 1)
    m = mixture.means.to(dtype=x.dtype, device=x.device)
    s2 = (mixture.stds.to(dtype=x.dtype, device=x.device) ** 2).unsqueeze(-1)  # (K, 1)
    resid = (x.unsqueeze(-2) - mean) / var.unsqueeze(-1)  # (x - alpha m_k) / v_k
    x0 = (r * (m + a.unsqueeze(-1) * s2 * resid)).sum(-2)
    z = (r * (sig.unsqueeze(-1) * path.noise_std**2 * resid)).sum(-2)
    return x0, z


def denoise(mixture: GaussianMixture, path: Interpolation, x: Tensor, t) -> Tensor:
    """E[x_0 | x_t = x], the exact denoiser under ``path`` (Lu & Song 2024, Sec. 3)."""
    return posterior_means(mixture, path, x, t)[0]


def velocity(mixture: GaussianMixture, path: Interpolation, x: Tensor, t) -> Tensor:
    """v(x, t) = alpha'(t) E[x_0 | x] + sigma'(t) E[z | x]: the exact PF-ODE velocity
    dx_t/dt of TrigFlow (Lu & Song 2024, Sec. 3) and of flow matching (Geng et al. 2025,
    Eq. (2)). Shape like x."""
    x0, z = posterior_means(mixture, path, x, t)
    tt = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    tt = tt.reshape(tt.shape + (1,)) if tt.ndim else tt
    _, _, da, ds = path.coefficients(tt)
    return da * x0 + ds * z


def flow(mixture, path: Interpolation, x: Tensor, t, s, rtol: float = 1e-10) -> Tensor:
    """Carry x from time t to time s along the exact ODE dx/dt = v(x, t) (Lu & Song 2024,
    Sec. 3; Geng et al. 2025, Eq. (2)), by ``solve_ivp`` (DOP853) in float64.

    x : (B, d); t, s : scalars or shape (B,), each row with its own interval. All rows are
    solved together in tau in [0, 1] with time(tau) = t + tau (s - t).
    """
    x64 = x.detach().to(torch.float64).cpu()
    B, d = x64.shape
    t0 = torch.as_tensor(t, dtype=torch.float64).expand(B).clone()
    t1 = torch.as_tensor(s, dtype=torch.float64).expand(B).clone()

    def rhs(tau, y):  # dx/dtau = (s - t) v(x, t + tau (s - t))
        xs = torch.from_numpy(y).reshape(B, d)
        return ((t1 - t0)[:, None] * velocity(mixture, path, xs, t0 + tau * (t1 - t0))).ravel()

    sol = solve_ivp(rhs, (0.0, 1.0), x64.numpy().ravel(), method="DOP853", rtol=rtol,
                    atol=rtol * 1e-2)  # fmt: skip
    if not sol.success:
        raise RuntimeError(f"the reference ODE solver failed: {sol.message}")
    out = torch.from_numpy(np.ascontiguousarray(sol.y[:, -1])).reshape(B, d)
    return out.to(dtype=x.dtype, device=x.device)


def average_velocity(mixture, path: Interpolation, z: Tensor, r, t, rtol=1e-10) -> Tensor:
    """u(z_t, r, t) = 1/(t - r) int_r^t v(z_s, s) ds = (z_t - z_r) / (t - r), the average
    velocity of MeanFlow (Geng et al. 2025, Eq. (3)), along the exact ODE (``flow``).

    Where r = t it is the instantaneous velocity v(z_t, t). z : (B, d); r, t scalars or (B,).
    """
    r = torch.as_tensor(r, dtype=z.dtype, device=z.device).expand(z.shape[0])
    t = torch.as_tensor(t, dtype=z.dtype, device=z.device).expand(z.shape[0])
    same = (t - r).abs() < 1e-12
    z_r = flow(mixture, path, z, t, torch.where(same, t, r), rtol)
    gap = torch.where(same, torch.ones_like(t), t - r)[:, None]
    return torch.where(same[:, None], velocity(mixture, path, z, t), (z - z_r) / gap)


def consistency_function(mixture, path: Interpolation, x: Tensor, t, rtol=1e-10) -> Tensor:
    """f(x_t, t) = x_0: the end at t = 0 of the exact ODE through x_t, the function sCM's
    f_theta learns (Lu & Song 2024, Sec. 3; Song et al. 2023, Sec. 3)."""
    return flow(mixture, path, x, t, 0.0, rtol)


def flow_rk4(mixture, path: Interpolation, x: Tensor, t, s, steps: int = 400) -> Tensor:
    """The same flow as ``flow`` (Lu & Song 2024, Sec. 3; Geng et al. 2025, Eq. (2)) by the
    classical Runge-Kutta method on a uniform grid of ``steps`` steps from t to s, written in
    torch so that it is differentiable in x, t and s (autograd and ``torch.func.jvp``):
    the exact consistency function and average velocity as networks, for the tests of the
    objectives' tangents. Its error is O((s - t)^4 / steps^4); compare it to ``flow``.
    """
    t = torch.as_tensor(t, dtype=x.dtype, device=x.device)
    s = torch.as_tensor(s, dtype=x.dtype, device=x.device)
    h = (s - t) / steps
    hb = h.reshape(-1, *([1] * (x.ndim - 1))) if h.ndim else h
    for i in range(steps):
        tau = t + i * h
        k1 = velocity(mixture, path, x, tau)
        k2 = velocity(mixture, path, x + hb / 2 * k1, tau + h / 2)
        k3 = velocity(mixture, path, x + hb / 2 * k2, tau + h / 2)
        k4 = velocity(mixture, path, x + hb * k3, tau + h)
        x = x + hb / 6 * (k1 + 2 * k2 + 2 * k3 + k4)
    return x
