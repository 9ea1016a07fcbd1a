"""Two-dimensional toy data, with exact scores where the data is a Gaussian mixture.

A mixture p_data = sum_k w_k N(m_k, s_k^2 I) stays a mixture under the forward process
of Consistency Models (Song et al. 2023, Sec. 2: mu = 0, sigma(t) = sqrt(2t)),

    p_t = p_data * N(0, t^2 I) = sum_k w_k N(m_k, (s_k^2 + t^2) I),

so its density, score and denoiser E[x_0 | x_t] are available in closed form at every t.
That is the ground truth against which the whole package is checked.

The toys are scaled to the pixel range [-1, 1] so that the paper's constants
(sigma_data = 0.5, eps = 0.002, T = 80) apply to them unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path

import torch
from torch import Tensor

from . import checks
from .pfode import broadcast_time


class GaussianMixture:
    """Isotropic Gaussian mixture p_data = sum_k w_k N(m_k, s_k^2 I) in any dimension d.

    Under the forward process of Song et al. 2023, Sec. 2, p_t = sum_k w_k N(m_k,
    (s_k^2 + t^2) I): density, score and denoiser are exact at every t.

    Parameters
    ----------
    means : array-like, shape (K, d)
    stds : array-like, shape (K,)
        Standard deviation s_k of each component, > 0.
    weights : array-like, shape (K,), optional
        Non-negative mixture weights; normalised to sum to 1. Default: uniform.

    Notes
    -----
    All methods accept x of shape (..., d) and t either a scalar or a tensor of shape
    x.shape[:-1]; they compute in x's dtype and device, so float64 inputs give float64
    answers.
    """

    def __init__(self, means, stds, weights=None):
        means = torch.as_tensor(means, dtype=torch.float64)
        if means.ndim != 2:
            raise ValueError(f"means must have shape (K, d), got {tuple(means.shape)}")
        K = means.shape[0]
        stds = torch.as_tensor(stds, dtype=torch.float64).reshape(-1)
        weights = torch.ones(K) if weights is None else weights
        weights = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
        if stds.shape[0] != K or weights.shape[0] != K:
            raise ValueError(
                f"means has {K} components but stds has {stds.shape[0]} and "
                f"weights has {weights.shape[0]}"
            )
        for name, v in (("means", means), ("stds", stds), ("weights", weights)):
            checks.check_finite(name, v)
        if K == 0:
            raise ValueError("means: expected at least one component, got shape (0, d)")
        if not bool((stds > 0).all()):
            raise ValueError(f"every std must be > 0, got {stds.tolist()}")
        if bool((weights < 0).any()) or not weights.sum() > 0:
            raise ValueError(f"weights must be non-negative with a positive sum, got {weights}")
        self.means, self.stds, self.weights = means, stds, weights / weights.sum()

    @property
    def dim(self) -> int:
        return self.means.shape[1]

    @classmethod
    def from_json(cls, path: str | Path) -> GaussianMixture:
        """Load ``{"means": [[...], ...], "stds": [...], "weights": [...]}`` from a file."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"mixture file not found: {path}")
        try:
            spec = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"{path} is not valid JSON: {err}") from err
        missing = {"means", "stds"} - set(spec) if isinstance(spec, dict) else {"means", "stds"}
        if missing:
            raise ValueError(
                f"{path} must hold an object with keys 'means', 'stds' and optionally "
                f"'weights'; missing {sorted(missing)}"
            )
        try:
            return cls(spec["means"], spec["stds"], spec.get("weights"))
        except (TypeError, ValueError, RuntimeError) as err:
            raise ValueError(f"{path}: malformed mixture: {err}") from err

    def to_json(self, path: str | Path) -> None:
        spec = {"means": self.means.tolist(), "stds": self.stds.tolist()}
        spec["weights"] = self.weights.tolist()
        Path(path).write_text(json.dumps(spec))

    def _params(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        kw = {"dtype": x.dtype, "device": x.device}
        return self.means.to(**kw), self.stds.to(**kw), self.weights.to(**kw)

    def _check(self, x: Tensor, t) -> None:
        """x of shape (..., d), finite; t >= 0 (t = 0 is the data), scalar or x.shape[:-1]."""
        checks.check_tensor("x", x)
        if x.ndim == 0 or x.shape[-1] != self.dim:
            raise ValueError(
                f"x: expected shape (..., {self.dim}) (the mixture is {self.dim}-dimensional), "
                f"got shape {tuple(x.shape)}"
            )
        if not checks.inside_checked():
            checks.check_finite("x", x)
            checks.check_times("t", t, 0.0, math.inf, interval="[0, inf)")

    def _log_components(self, x: Tensor, t) -> tuple[Tensor, Tensor]:
        """log(w_k N(x; m_k, (s_k^2 + t^2) I)) and the variances, both shape (..., K)."""
        self._check(x, t)
        m, s, w = self._params(x)
        var = s**2 + broadcast_time(t, x) ** 2  # s_k^2 + t^2
        sq = ((x.unsqueeze(-2) - m) ** 2).sum(-1)  # ||x - m_k||^2
        log_norm = -0.5 * self.dim * torch.log(2 * math.pi * var)
        return torch.log(w) + log_norm - 0.5 * sq / var, var

    def log_prob(self, x: Tensor, t: float | Tensor = 0.0) -> Tensor:
        """log p_t(x) with p_t = p_data * N(0, t^2 I) (Sec. 2). Shape x.shape[:-1]."""
        return torch.logsumexp(self._log_components(x, t)[0], dim=-1)

    def responsibilities(self, x: Tensor, t: float | Tensor) -> Tensor:
        """Posterior component probabilities P(k | x_t = x) under p_t (Sec. 2), shape (..., K).

        The weights r_k of the exact score and denoiser of the PF-ODE, Eq. (2).
        """
        return torch.softmax(self._log_components(x, t)[0], dim=-1)

    def score(self, x: Tensor, t: float | Tensor) -> Tensor:
        """grad_x log p_t(x) = sum_k r_k(x) (m_k - x) / (s_k^2 + t^2): the score of Eq. (2).

        Shape like x.
        """
        log_c, var = self._log_components(x, t)
        r = torch.softmax(log_c, dim=-1)
        m = self.means.to(dtype=x.dtype, device=x.device)
        return ((r / var).unsqueeze(-1) * (m - x.unsqueeze(-2))).sum(-2)

    def denoise(self, x: Tensor, t: float | Tensor) -> Tensor:
        """E[x_0 | x_t = x]: the optimal denoiser D of the PF-ODE dx/dt = (x - D) / t, Eq. (3).

        Computed from the posterior of each component.

        Each component's posterior mean is (s_k^2 x + t^2 m_k) / (s_k^2 + t^2); Tweedie's
        formula x + t^2 grad log p_t(x) gives the same (a test checks it).
        """
        log_c, var = self._log_components(x, t)
        r = torch.softmax(log_c, dim=-1)
        m, s, _ = self._params(x)
        t2 = broadcast_time(t, x) ** 2
        post = (s**2).unsqueeze(-1) * x.unsqueeze(-2) + t2.unsqueeze(-1) * m
        return ((r / var).unsqueeze(-1) * post).sum(-2)

    def posterior_sample(
        self, x_t: Tensor, t: float, n: int, generator: torch.Generator | None = None
    ) -> Tensor:
        """n exact draws of x_0 ~ p(x_0 | x_t) (Sec. 2): shape (n, B, d) for x_t of shape (B, d).

        The posterior is a mixture with weights P(k | x_t) (``responsibilities``) and
        components N((s_k^2 x_t + t^2 m_k) / (s_k^2 + t^2), s_k^2 t^2 / (s_k^2 + t^2) I);
        its mean is ``denoise(x_t, t)``. Lemma 1's estimator averages over these draws.
        """
        checks.check_count("n", n, 1)
        r = self.responsibilities(x_t, t)  # (B, K)
        k = torch.multinomial(r, n, replacement=True, generator=generator).T  # (n, B)
        m, s, _ = self._params(x_t)
        var = s[k] ** 2 + t**2
        mean = (s[k, None] ** 2 * x_t + t**2 * m[k]) / var[..., None]
        std = (s[k] * t / var.sqrt())[..., None]
        z = torch.randn(mean.shape, generator=generator, dtype=x_t.dtype, device=x_t.device)
        return mean + std * z

    def sample(
        self, n: int, generator: torch.Generator | None = None, *, dtype=torch.float32
    ) -> Tensor:
        """n exact samples x ~ p_data (Sec. 2), shape (n, d), on the generator's device."""
        checks.check_count("n", n, 1)
        device = generator.device if generator is not None else torch.device("cpu")
        m, s, w = (p.to(device) for p in (self.means, self.stds, self.weights))
        k = torch.multinomial(w, n, replacement=True, generator=generator)
        z = torch.randn(n, self.dim, generator=generator, device=device, dtype=torch.float64)
        return (m[k] + s[k, None] * z).to(dtype)

    def conditional(self, dims: list[int], values: Tensor) -> GaussianMixture:
        """The exact law of the other coordinates given x[dims] = values (p_data at t = 0).

        The ground truth for inpainting a 2D point (zero-shot editing, Algorithm 4).

        For isotropic components the free coordinates stay independent of the fixed ones
        inside a component, so the conditional is a mixture over the same components with
        weights w_k N(values; m_k[dims], s_k^2 I).
        """
        values = torch.as_tensor(values, dtype=torch.float64).reshape(len(dims))
        free = [i for i in range(self.dim) if i not in dims]
        part = GaussianMixture(self.means[:, dims], self.stds, self.weights)
        log_w = part._log_components(values, 0.0)[0]
        return GaussianMixture(self.means[:, free], self.stds, torch.softmax(log_w, -1))

    def __repr__(self) -> str:
        return f"GaussianMixture(K={self.means.shape[0]}, d={self.dim})"


class SampleToy:
    """A toy distribution known only through samples (no closed-form score).

    Such data can be learned by CT and iCT (Algorithm 3), or by CD from a trained teacher.

    Parameters
    ----------
    name : str
    sampler : callable (n, generator) -> Tensor of shape (n, 2), float64
    """

    dim = 2

    def __init__(self, name: str, sampler: Callable[[int, torch.Generator | None], Tensor]):
        self.name, self._sampler = name, sampler

    def sample(
        self, n: int, generator: torch.Generator | None = None, *, dtype=torch.float32
    ) -> Tensor:
        """n samples x ~ p_data (Song et al. 2023, Sec. 2), shape (n, 2)."""
        checks.check_count("n", n, 1)
        return self._sampler(n, generator).to(dtype)

    def __repr__(self) -> str:
        return f"SampleToy({self.name!r})"


def _randn(n, d, generator):
    device = generator.device if generator is not None else "cpu"
    return torch.randn(n, d, generator=generator, device=device, dtype=torch.float64)


def _rand(n, generator):
    device = generator.device if generator is not None else "cpu"
    return torch.rand(n, generator=generator, device=device, dtype=torch.float64)


def eight_gaussians() -> GaussianMixture:
    """Eight components evenly spaced on the unit circle, std 0.1.

    Inside the pixel range [-1, 1], where sigma_data = 0.5 and the constants of App. C apply.
    """
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    return GaussianMixture(torch.stack([angles.cos(), angles.sin()], 1), [0.1] * 8)


def twentyfive_gaussians() -> GaussianMixture:
    """A 5 x 5 grid of components on [-1, 1]^2 (spacing 0.5), std 0.05.

    Inside the pixel range [-1, 1], where sigma_data = 0.5 and the constants of App. C apply.
    """
    g = torch.linspace(-1, 1, 5, dtype=torch.float64)
    means = torch.cartesian_prod(g, g)
    return GaussianMixture(means, [0.05] * 25)


def _checkerboard(n, generator):
    # Uniform on the dark squares of a 4 x 4 board covering [-1, 1]^2.
    col = torch.floor(_rand(n, generator) * 4)
    row = 2 * torch.floor(_rand(n, generator) * 2) + (col % 2)
    u = torch.stack([_rand(n, generator), _rand(n, generator)], 1)
    return (torch.stack([col, row], 1) + u) / 2 - 1


def _two_moons(n, generator):
    # Two interleaved half circles (unit radius), centred and scaled to about [-1, 1].
    theta = math.pi * _rand(n, generator)
    upper = _rand(n, generator) < 0.5
    x = torch.where(upper, theta.cos(), 1 - theta.cos())
    y = torch.where(upper, theta.sin(), 0.5 - theta.sin())
    pts = torch.stack([x - 0.5, y - 0.25], 1) / 1.5
    return pts + 0.03 * _randn(n, 2, generator)


def _swiss_roll(n, generator):
    # Arc-length-uniform points of the spiral (t cos t, t sin t), t in [1.5 pi, 4.5 pi].
    t = 1.5 * math.pi * (1 + 8 * _rand(n, generator)).sqrt()
    pts = torch.stack([t * t.cos(), t * t.sin()], 1) / (4.5 * math.pi)
    return pts + 0.02 * _randn(n, 2, generator)


TOYS: dict[str, Callable[[], GaussianMixture | SampleToy]] = {
    "8gaussians": eight_gaussians,
    "25gaussians": twentyfive_gaussians,
    "checkerboard": lambda: SampleToy("checkerboard", _checkerboard),
    "two_moons": lambda: SampleToy("two_moons", _two_moons),
    "swiss_roll": lambda: SampleToy("swiss_roll", _swiss_roll),
}


def toy_data(name: str | Path) -> GaussianMixture | SampleToy:
    """A named toy (see ``TOYS``) or a Gaussian mixture from a ``.json`` file.

    Mixtures (``8gaussians``, ``25gaussians``, JSON files) are exact; the others are
    sample-only. All are scaled to [-1, 1] so that the constants of App. C apply.
    """
    if str(name).endswith(".json"):
        return GaussianMixture.from_json(name)
    if name not in TOYS:
        raise ValueError(
            f"unknown data {name!r}: choose one of {sorted(TOYS)} or a mixture .json file"
        )
    return TOYS[name]()


def random_mixture(
    seed: int,
    dim: int = 2,
    components: tuple[int, int] = (2, 16),
    spread: tuple[float, float] = (0.3, 3.0),
    std: tuple[float, float] = (0.02, 0.5),
) -> GaussianMixture:
    """A random isotropic mixture drawn from ``seed``: a benchmark family unlike the toys,
    with exact scores and denoisers at every t like any mixture (Sec. 2, Song et al. 2023).

    K uniform in ``components`` (inclusive); means uniform in [-a, a]^d with the half-width
    a log-uniform in ``spread``; each component's std log-uniform in ``std``; weights
    Dirichlet(1, ..., 1) mixed with 10% of uniform, so they are unequal but none vanishes.
    The same seed and dim always give the same mixture.
    """
    g = torch.Generator().manual_seed(seed)

    def log_uniform(lo_hi, size):
        lo, hi = math.log(lo_hi[0]), math.log(lo_hi[1])
        return torch.exp(lo + (hi - lo) * torch.rand(size, generator=g, dtype=torch.float64))

    K = int(torch.randint(components[0], components[1] + 1, (1,), generator=g))
    a = log_uniform(spread, 1)
    means = a * (2 * torch.rand(K, dim, generator=g, dtype=torch.float64) - 1)
    stds = log_uniform(std, K)
    gamma = -torch.log(torch.rand(K, generator=g, dtype=torch.float64))  # Dirichlet(1) ...
    weights = 0.9 * gamma / gamma.sum() + 0.1 / K  # ... with a floor of 0.1 / K
    return GaussianMixture(means, stds, weights)
