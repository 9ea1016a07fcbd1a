"""Zero-shot editing with a consistency model: Algorithm 4 of Song et al. 2023 (App. D).

Given a reference y, a binary mask Omega (1 = the part to generate) and an invertible
linear map A, Algorithm 4 alternates one consistency step with re-imposing the known part
of A y, on a descending list of times t_1 > t_2 > ... > t_N:

    y <- A^{-1}[(A y) * (1 - Omega)]                       (line 1: the unknown part zeroed)
    x ~ N(y, t_1^2 I);  x <- f_theta(x, t_1)
    x <- A^{-1}[(A y) * (1 - Omega) + (A x) * Omega]       (re-impose the known part)
    for n = 2..N:
        x ~ N(x, (t_n^2 - eps^2) I);  x <- f_theta(x, t_n)
        x <- A^{-1}[(A y) * (1 - Omega) + (A x) * Omega]

Each task is the choice of A and Omega (Sec. 6.3, App. D):

    task              A                                           Omega = 1 on
    inpainting        identity                                    the missing pixels
    colorization      3 x 3 orthogonal Q, first axis luminance    the two chroma axes
    super-resolution  p^2 x p^2 orthogonal Q per p x p patch,     every coefficient but
                      first axis the patch mean                   the patch mean
    stroke editing    identity                                    everything (SDEdit)

Denoising is one evaluation f_theta(x_noisy, sigma), and interpolation maps a spherical
interpolation of two initial noises through f_theta(., T). ``docs/editing.md`` lists where
the paper's pseudo-code is ambiguous and which reading is implemented here.

Images are (B, C, H, W); inpainting and the channel map also take 2D points (B, d). Masks
broadcast against A x (e.g. (1, 1, H, W) for a mask shared by the batch).

References
----------
.. [1] Song, Dhariwal, Chen, Sutskever. "Consistency Models." ICML 2023, Sec. 6.3, App. D.
.. [2] Meng et al. "SDEdit: Guided Image Synthesis and Editing with Stochastic
       Differential Equations." ICLR 2022.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from . import checks
from .pfode import time_range

# Luminance weights of the grey image (ITU-R BT.601), App. D of [1].
LUMINANCE = (0.2989, 0.5870, 0.1140)
# The colorization matrix printed in App. D of [1] (4 decimals); ``colorization_matrix``
# recomputes it by QR.
PAPER_COLORIZATION_Q = (
    (0.4471, -0.8204, 0.3563),
    (0.8780, 0.4785, 0.0),
    (0.1705, -0.3129, -0.9343),
)
# Stroke-guided editing (SDEdit) on LSUN Bedroom 256: N = 2 with t_1 = 5.38, t_2 = 2.24,
# App. D of [1].
STROKE_TIMES = (5.38, 2.24)


class LinearMap(NamedTuple):
    """An invertible linear map A of Algorithm 4 and its inverse.

    ``forward(x)`` maps x (B, *D) to A x, of any shape the mask Omega broadcasts against;
    ``inverse`` maps back, so that ``inverse(forward(x)) == x`` up to rounding.
    """

    forward: Callable[[Tensor], Tensor]
    inverse: Callable[[Tensor], Tensor]


def _same(x: Tensor) -> Tensor:
    return x


IDENTITY = LinearMap(_same, _same)  # A = I: inpainting and stroke editing (App. D)


# --- The orthogonal matrices of App. D ----------------------------------------------------


def orthogonal_with_first_column(v) -> Tensor:
    """A square orthogonal matrix Q whose first column is v / ||v||, by QR (App. D of [1]).

    QR of [v / ||v||, e_2, ..., e_n] (full rank when v_1 != 0), with the sign chosen so that
    the first column points along +v, as in the official code.

    Parameters
    ----------
    v : array-like, shape (n,), v[0] != 0

    Returns
    -------
    Tensor, float64, shape (n, n), Q^T Q = I and Q[:, 0] = v / ||v||.
    """
    v = torch.as_tensor(v, dtype=torch.float64).reshape(-1)
    M = torch.eye(len(v), dtype=torch.float64)
    M[:, 0] = v / v.norm()
    Q = torch.linalg.qr(M)[0]
    return Q if float(Q[:, 0] @ v) > 0 else -Q


def colorization_matrix() -> Tensor:
    """Q of colorization, App. D of [1]: 3 x 3 orthogonal, first column along the luminance
    weights (0.2989, 0.5870, 0.1140). Float64, shape (3, 3); equals the paper's printed Q
    (``PAPER_COLORIZATION_Q``) to its 4 decimals."""
    return orthogonal_with_first_column(LUMINANCE)


def patch_matrix(p: int) -> Tensor:
    """Q of super-resolution, App. D of [1]: p^2 x p^2 orthogonal with first column
    (1/p, ..., 1/p), so the first coefficient of a p x p patch is p times its mean.
    Float64, shape (p^2, p^2)."""
    if p < 1:
        raise ValueError(f"the patch size p must be >= 1, got {p}")
    return orthogonal_with_first_column(torch.ones(p * p))


# --- The maps A ---------------------------------------------------------------------------


def channel_map(Q: Tensor) -> LinearMap:
    """A acting on the channel axis (dim 1): (A x)[b, k, ...] = sum_l x[b, l, ...] Q[l, k].

    The colorization map of App. D of [1] with Q = ``colorization_matrix()``. The inverse
    uses Q^{-1} (= Q^T for an orthogonal Q). Works on images (B, C, H, W) and points (B, d).
    """
    Q = torch.as_tensor(Q, dtype=torch.float64)
    Q_inv = torch.linalg.inv(Q)

    def apply(x: Tensor, M: Tensor) -> Tensor:
        return (x.movedim(1, -1) @ M.to(x)).movedim(-1, 1)

    return LinearMap(lambda x: apply(x, Q), lambda y: apply(y, Q_inv))


def to_patches(x: Tensor, p: int) -> Tensor:
    """(B, C, H, W) -> (B, C, p^2, H/p, W/p): coefficient m of patch (i, j) is the pixel
    (i p + m // p, j p + m % p), the ordering of App. D of [1]."""
    B, C, H, W = x.shape
    if H % p or W % p:
        raise ValueError(f"image size {H} x {W} is not a multiple of the patch size {p}")
    x = x.reshape(B, C, H // p, p, W // p, p)  # (b, c, i, r, j, s): pixel (i p + r, j p + s)
    return x.permute(0, 1, 3, 5, 2, 4).reshape(B, C, p * p, H // p, W // p)


def from_patches(y: Tensor, p: int) -> Tensor:
    """The inverse of ``to_patches`` (patch ordering of App. D of [1]):
    (B, C, p^2, h, w) -> (B, C, h p, w p)."""
    B, C, _, h, w = y.shape
    y = y.reshape(B, C, p, p, h, w).permute(0, 1, 4, 2, 5, 3)
    return y.reshape(B, C, h * p, w * p)


def patch_map(Q: Tensor, p: int) -> LinearMap:
    """A of super-resolution, App. D of [1]: each non-overlapping p x p patch is mapped by Q,

        (A x)[b, c, k, i, j] = sum_m x[b, c, i p + m // p, j p + m % p] Q[m, k],

    with output shape (B, C, p^2, H/p, W/p) (coefficient k on axis 2).
    """
    Q = torch.as_tensor(Q, dtype=torch.float64)
    Q_inv = torch.linalg.inv(Q)

    def forward(x: Tensor) -> Tensor:
        return torch.einsum("bcmhw,mk->bckhw", to_patches(x, p), Q.to(x))

    def inverse(y: Tensor) -> Tensor:
        return from_patches(torch.einsum("bckhw,km->bcmhw", y, Q_inv.to(y)), p)

    return LinearMap(forward, inverse)


# --- Algorithm 4 --------------------------------------------------------------------------


def impose(x: Tensor, Ay: Tensor, mask: Tensor, A: LinearMap = IDENTITY) -> Tensor:
    """x <- A^{-1}[(A y) * (1 - Omega) + (A x) * Omega]: the replacement of Algorithm 4 [1].

    Parameters
    ----------
    x : Tensor, shape (B, *D), the current sample
    Ay : Tensor, A y of the reference (shape of A x)
    mask : Tensor, Omega, broadcastable to A x; 1 = generated, 0 = kept from A y
    """
    return A.inverse(Ay * (1 - mask) + A.forward(x) * mask)


@torch.no_grad()
def zero_shot_edit(
    model,
    y: Tensor,
    mask: Tensor,
    ts: Sequence[float],
    A: LinearMap = IDENTITY,
    start: Tensor | None = None,
    generator: torch.Generator | None = None,
    clip: tuple[float, float] | None = None,
    eps: float | None = None,
    T: float | None = None,
    return_all: bool = False,
) -> Tensor:
    """Zero-shot editing, Algorithm 4 of Song et al. 2023 (App. D).

    Parameters
    ----------
    model : consistency model f_theta(x, t)
    y : Tensor, shape (B, *D), the reference (its kept part is what matters)
    mask : Tensor, Omega, broadcastable to A x; 1 = to generate, 0 = kept from A y
    ts : strictly descending times t_1 > ... > t_N in [eps, T]
    A : the invertible linear map (``IDENTITY``, ``channel_map``, ``patch_map``)
    start : mean of the initial noise. Default: line 1 of Algorithm 4,
        A^{-1}[(A y) * (1 - Omega)]. Stroke editing passes the strokes (Omega = 1 would
        zero them; see ``docs/editing.md``).
    clip : optional (low, high) to clamp each f output before the replacement, as the
        official code does for images ((-1, 1)).
    eps, T : the time range; default: the model's own (``pfode.time_range``), so that a
        standardized toy model (``DataScaled``) edits in data units.
    return_all : also return x after every step, shape (N, B, *D).

    Returns
    -------
    Tensor, shape (B, *D): the edited sample, whose kept part of A x equals that of A y.
    """
    eps, T = time_range(model, eps, T)
    ts = checks.check_times("ts", ts, eps, T, descending=True).tolist()
    _check_input("y", y, model)
    checks.check_clip(clip)
    mask = torch.as_tensor(mask).to(y)
    Ay = A.forward(y)
    checks.check_broadcasts("mask", mask, "y" if A is IDENTITY else "A y", Ay.shape)
    checks.check_finite("mask", mask)
    if bool(((mask < 0) | (mask > 1)).any()):
        raise ValueError("mask: expected values in [0, 1] (1 = to generate, 0 = kept), got "
                         f"values in [{mask.min().item():g}, {mask.max().item():g}]")  # fmt: skip
    if start is not None:
        checks.check_same_shape("y", y, "start", start)
        checks.check_finite("start", start)
    clamp = (lambda v: v.clamp(*clip)) if clip is not None else (lambda v: v)
    if start is None:
        start = A.inverse(Ay * (1 - mask))  # $y \leftarrow A^{-1}[(Ay) \odot (1 - \Omega)]$
    x, outs = start, []
    for n, t in enumerate(ts):
        z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
        # $x \sim N(y, t_1^2 I)$ first, then $x \sim N(x, (t_n^2 - \epsilon^2) I)$
        sd = t if n == 0 else math.sqrt(t**2 - eps**2)
        x = clamp(model(x + sd * z, t))  # $x \leftarrow f_\theta(x, t_n)$
        x = impose(x, Ay, mask, A)  # $x \leftarrow A^{-1}[(Ay)(1-\Omega) + (Ax)\Omega]$
        outs.append(x)
    return torch.stack(outs) if return_all else x


# --- The tasks of Sec. 6.3 / App. D -------------------------------------------------------


def inpaint(model, y: Tensor, mask: Tensor, ts, **kw) -> Tensor:
    """Inpainting: Algorithm 4 of Song et al. 2023 with A = I and Omega = 1 on the missing
    entries (App. D).

    y : (B, *D) images or points; mask : broadcastable to y, 1 = missing (to generate).
    Keyword arguments go to ``zero_shot_edit`` (generator, clip, return_all, ...).
    """
    return zero_shot_edit(model, y, mask, ts, IDENTITY, **kw)


def to_gray(x: Tensor) -> Tensor:
    """The grey image of App. D of [1]: every channel set to 0.2989 R + 0.5870 G + 0.1140 B.

    x : (B, 3, H, W) -> (B, 3, H, W).
    """
    w = torch.tensor(LUMINANCE, dtype=x.dtype, device=x.device)
    return torch.einsum("bchw,c->bhw", x, w).unsqueeze(1).expand_as(x).contiguous()


def colorization_mask(dtype=torch.float32) -> Tensor:
    """Omega of colorization, App. D of [1]: 0 on the luminance axis of A x, 1 on the two
    others; shape (1, 3, 1, 1)."""
    return torch.tensor([0.0, 1.0, 1.0], dtype=dtype).reshape(1, 3, 1, 1)


def colorize(model, gray: Tensor, ts, **kw) -> Tensor:
    """Colorization: Algorithm 4 of Song et al. 2023 with A = the channel map of
    ``colorization_matrix()`` (App. D); the luminance axis is kept, the two others generated.

    gray : (B, 3, H, W) with equal channels (``to_gray``), or (B, 1, H, W).
    Returns (B, 3, H, W) whose luminance axis of A x equals that of A gray.
    """
    _check_input("gray", gray, None)
    if gray.ndim != 4 or gray.shape[1] not in (1, 3):
        raise ValueError(f"gray: expected images (B, 3, H, W) or (B, 1, H, W), got shape "
                         f"{tuple(gray.shape)}")  # fmt: skip
    gray = gray.expand(gray.shape[0], 3, *gray.shape[2:]) if gray.shape[1] == 1 else gray
    A = channel_map(colorization_matrix())
    return zero_shot_edit(model, gray, colorization_mask(gray.dtype), ts, A, **kw)


def downsample(x: Tensor, p: int) -> Tensor:
    """Means over non-overlapping p x p patches: (B, C, H, W) -> (B, C, H/p, W/p), the
    low-resolution input of super-resolution, App. D of [1]."""
    return F.avg_pool2d(x, p)


def upsample(x: Tensor, p: int) -> Tensor:
    """Repeat each pixel p x p times: (B, C, h, w) -> (B, C, h p, w p) (App. D of [1])."""
    return x.repeat_interleave(p, dim=-2).repeat_interleave(p, dim=-1)


def super_resolution_mask(p: int, dtype=torch.float32) -> Tensor:
    """Omega of super-resolution, App. D of [1]: 0 on each patch's mean coefficient (k = 0),
    1 on the p^2 - 1 others; shape (1, 1, p^2, 1, 1), against ``patch_map`` outputs."""
    mask = torch.ones(1, 1, p * p, 1, 1, dtype=dtype)
    mask[:, :, 0] = 0.0
    return mask


def super_resolve(model, low_res: Tensor, factor: int, ts, **kw) -> Tensor:
    """Super-resolution: Algorithm 4 of Song et al. 2023 with A = ``patch_map(patch_matrix(p))``
    and p = ``factor`` (App. D); every patch keeps its mean, the rest is generated.

    low_res : (B, C, h, w) -> (B, C, h p, w p), whose p x p patch means equal low_res.
    """
    p = checks.check_count("factor", factor, 1)
    if not isinstance(low_res, Tensor) or low_res.ndim != 4:
        raise ValueError(f"low_res: expected images (B, C, h, w), got {_given(low_res)}")
    _check_input("low_res", low_res, None)
    A = patch_map(patch_matrix(p), p)
    y = upsample(low_res, p)
    checks.check_model_input(f"low_res upsampled {p}x", y, model)
    return zero_shot_edit(model, y, super_resolution_mask(p, y.dtype), ts, A, **kw)


def stroke_edit(model, strokes: Tensor, ts=STROKE_TIMES, **kw) -> Tensor:
    """Stroke-guided editing (SDEdit [2]): Algorithm 4 of Song et al. 2023 with A = I and
    Omega = 1 everywhere, started from x ~ N(strokes, t_1^2 I) (App. D).

    strokes : (B, *D) the painting. ts : the times, default the paper's LSUN (5.38, 2.24).
    With Omega = 1 nothing is re-imposed, so this is Algorithm 1 started from the noised
    strokes instead of N(0, T^2 I).
    """
    _check_input("strokes", strokes, model)
    mask = torch.ones((), dtype=strokes.dtype)
    return zero_shot_edit(model, strokes, mask, ts, IDENTITY, start=strokes, **kw)


@torch.no_grad()
def denoise(model, x_noisy: Tensor, sigma, clip: tuple[float, float] | None = None) -> Tensor:
    """Denoising: one evaluation f_theta(x_noisy, sigma), Sec. 6.3 / App. D of Song et al. 2023.

    x_noisy : (B, *D), a clean x plus N(0, sigma^2 I) noise; sigma : float or (B,) in
    [eps, T]. The consistency function maps the noisy point to the end of its PF-ODE
    trajectory (Sec. 3), a sample that stays close to x_noisy's clean content.
    """
    checks.check_model_input("x_noisy", x_noisy, model)
    checks.check_finite("x_noisy", x_noisy)
    checks.check_times("sigma", sigma, *time_range(model))
    checks.check_clip(clip)
    x = model(x_noisy, sigma)
    return x.clamp(*clip) if clip is not None else x


def slerp(z1: Tensor, z2: Tensor, alpha: float) -> Tensor:
    """Spherical interpolation of initial noises, App. D of Song et al. 2023:

        z = sin((1 - alpha) psi) / sin(psi) z1 + sin(alpha psi) / sin(psi) z2,
        psi = arccos(z1 . z2 / (||z1|| ||z2||)),

    with psi computed per sample over all its entries. z1, z2 : (B, *D); returns (B, *D).
    Exactly z1 at alpha = 0 and z2 at alpha = 1; falls back to linear interpolation when
    z1 and z2 are (anti)parallel (sin psi ~ 0).
    """
    a, b = z1.flatten(1), z2.flatten(1)
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    psi = torch.arccos(cos.clamp(-1, 1)).reshape(-1, *[1] * (z1.ndim - 1))
    sin = torch.sin(psi)
    tiny = sin.abs() < 1e-7
    safe = torch.where(tiny, torch.ones_like(sin), sin)
    w1 = torch.where(tiny, torch.full_like(sin, 1 - alpha), torch.sin((1 - alpha) * psi) / safe)
    w2 = torch.where(tiny, torch.full_like(sin, alpha), torch.sin(alpha * psi) / safe)
    return w1 * z1 + w2 * z2


@torch.no_grad()
def interpolate(
    model,
    z1: Tensor,
    z2: Tensor,
    alphas,
    T: float | None = None,
    clip: tuple[float, float] | None = None,
) -> Tensor:
    """Interpolation, App. D of Song et al. 2023: f_theta(slerp(z1, z2, alpha), T) for each
    alpha.

    z1, z2 : (B, *D) initial noises, already scaled by T (~ N(0, T^2 I)); alphas : in [0, 1];
    T : default the model's own (``pfode.time_range``).
    Returns (len(alphas), B, *D); alpha = 0 and 1 give the samples f_theta(z1, T) and
    f_theta(z2, T).
    """
    checks.check_model_input("z1", z1, model)
    checks.check_same_shape("z1", z1, "z2", z2)
    checks.check_finite("z1", z1)
    checks.check_finite("z2", z2)
    alphas = checks.check_values("alphas", alphas, 0.0, 1.0).tolist()
    checks.check_clip(clip)
    T = time_range(model, None, T)[1]
    outs = [model(slerp(z1, z2, a), T) for a in alphas]
    out = torch.stack(outs)
    return out.clamp(*clip) if clip is not None else out


def _check_input(name: str, y, model) -> None:
    """A finite batch the model takes; images (B, C, H, W) also in [-1, 1]."""
    checks.check_model_input(name, y, model)
    if y.ndim == 4:
        checks.check_image_range(name, y)
    else:
        checks.check_finite(name, y)


def _given(x) -> str:
    return f"shape {tuple(x.shape)}" if isinstance(x, Tensor) else type(x).__name__


# --- Masks for inpainting -----------------------------------------------------------------


def inpainting_masks(H: int, W: int, seed: int = 0) -> dict[str, Tensor]:
    """A few masks Omega for inpainting (App. D of [1]), 1 = to generate, shape (1, 1, H, W):
    a centred square, the right half, the bottom half, 3 of every 4 pixels missing
    at random, and a 2-pixel grid of lines."""
    g = torch.Generator().manual_seed(seed)
    masks = {name: torch.zeros(1, 1, H, W) for name in ("square", "right half", "bottom half")}
    masks["square"][..., H // 4 : H - H // 4, W // 4 : W - W // 4] = 1
    masks["right half"][..., W // 2 :] = 1
    masks["bottom half"][..., H // 2 :, :] = 1
    masks["random 75%"] = (torch.rand(1, 1, H, W, generator=g) < 0.75).float()
    lines = torch.zeros(1, 1, H, W)
    lines[..., torch.arange(H) % 8 < 2, :] = 1
    lines[..., torch.arange(W) % 8 < 2] = 1
    masks["lines"] = lines
    return masks


# --- Helpers for checks and demonstrations ------------------------------------------------


def simple_painting(H: int = 32, W: int = 32) -> Tensor:
    """A stroke painting for stroke-guided editing (SDEdit [2], App. D of [1]): flat colour
    regions (sky, sun, hill, grass), values in [-1, 1], shape (1, 3, H, W)."""
    i = torch.arange(H, dtype=torch.float32).reshape(H, 1) / H
    j = torch.arange(W, dtype=torch.float32).reshape(1, W) / W
    colours = {"sky": (0.35, 0.6, 0.95), "sun": (1.0, 0.85, 0.2), "hill": (0.25, 0.45, 0.2),
               "grass": (0.3, 0.75, 0.25)}  # fmt: skip
    regions = {
        "sun": (i - 0.25) ** 2 + (j - 0.75) ** 2 < 0.018,
        "hill": i > 0.55 + 0.15 * torch.cos(6.0 * j),
        "grass": i > 0.8,
    }
    img = torch.tensor(colours["sky"]).reshape(3, 1, 1).expand(3, H, W).clone()
    for name, region in regions.items():
        img[:, region.expand(H, W)] = torch.tensor(colours[name]).reshape(3, 1)
    return (img * 2 - 1).unsqueeze(0)
