"""Checks of the arguments of cmedu's public functions: one function per kind of check.

Each check raises a ``ValueError`` (a ``TypeError`` for an argument of the wrong type)
whose message names the argument, what was expected and what was given, in the caller's
terms::

    x: expected shape (B, 2) (the model takes data of shape (2,)), got shape (4, 3)

The public functions check their arguments once, on entry. Checks of tensor *values*
(times in range, finiteness) read the tensor back to the host, which makes an accelerator
wait; the inner loops of training and sampling therefore call the models inside
``checked()``, which tells the models that their caller has checked already. Checks of
shapes and types cost no tensor operation and always run.

Times are checked against [eps, T] with one relative tolerance, ``TIME_RTOL``; image values
against [-1, 1] with ``IMAGE_TOL``.
"""

from __future__ import annotations

import contextlib
import math
import numbers

import torch
from torch import Tensor

# A time may leave [eps, T] by this fraction of the bound it crosses: the rounding of
# float32 times (a relative 6e-8), with room to spare, and far below any real mistake.
TIME_RTOL = 1e-6
# Images are in [-1, 1]; values may exceed it by this much (rounding, resampling).
IMAGE_TOL = 1e-3

_checked_depth = 0  # > 0 inside ``checked()``


@contextlib.contextmanager
def checked():
    """A context whose model calls skip the checks of tensor values: the caller did them.

    The losses and the solvers enter it after checking their own arguments, so a
    training step or a solver step makes the device wait for no check.
    """
    global _checked_depth
    _checked_depth += 1
    try:
        yield
    finally:
        _checked_depth -= 1


def inside_checked() -> bool:
    """Whether the caller runs inside ``checked()`` (its arguments are known good)."""
    return _checked_depth > 0


def _shape(shape) -> str:
    """(3, None, None) -> "(3, any, any)"; (2,) -> "(2,)"."""
    items = ["any" if s is None else str(s) for s in shape]
    if not items:
        return "()"
    return f"({items[0]},)" if len(items) == 1 else f"({', '.join(items)})"


def _given(x) -> str:
    return f"shape {_shape(tuple(x.shape))}" if isinstance(x, Tensor) else repr(x)


def check_tensor(name: str, x, *, floating: bool = True) -> None:
    """x must be a torch.Tensor, of a floating-point dtype unless ``floating=False``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name}: expected a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name}: expected a floating-point tensor, got dtype {x.dtype}")


def check_data_shape(name: str, x, data_shape, what: str = "the model") -> None:
    """x (a tensor or a shape) must be a batch of B >= 1 samples of shape data_shape.

    ``None`` entries of ``data_shape`` match any size.
    """
    if isinstance(x, Tensor):
        check_tensor(name, x)
    shape = tuple(x.shape) if isinstance(x, Tensor) else tuple(x)
    fits = len(shape) == len(data_shape) + 1 and all(
        want is None or want == got for want, got in zip(data_shape, shape[1:])
    )
    if not fits:
        raise ValueError(
            f"{name}: expected shape {_shape(('B', *data_shape))} ({what} takes data of shape "
            f"{_shape(data_shape)}), got shape {_shape(shape)}"
        )
    if shape[0] == 0:
        raise ValueError(f"{name}: expected a batch of at least one sample, got shape {shape}")


def check_model_input(name: str, x, model) -> None:
    """x (a tensor or a shape) must be a batch the model takes: B >= 1 samples of its data_shape.

    Models that do not declare ``data_shape`` (plain callables) get the batch check only.
    """
    data_shape = getattr(getattr(model, "module", model), "data_shape", None)  # DDP: .module
    if data_shape is not None:
        check_data_shape(name, x, data_shape)
        return
    if isinstance(x, Tensor):
        check_tensor(name, x)
    shape = tuple(x.shape) if isinstance(x, Tensor) else tuple(x)
    if len(shape) < 2 or shape[0] == 0:
        raise ValueError(
            f"{name}: expected a batch of shape (B, *D) with B >= 1, got shape {_shape(shape)}"
        )


def check_batch(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """a and b must hold the same number of samples (their first dimension)."""
    if a.ndim == 0 or b.ndim == 0 or a.shape[0] != b.shape[0]:
        raise ValueError(
            f"{name_b}: expected the batch size of {name_a} ({_given(a)}), got {_given(b)}"
        )


def check_same_shape(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """a and b must have the same shape."""
    if a.shape != b.shape:
        raise ValueError(f"{name_b}: expected the shape of {name_a}, {_given(a)}, got {_given(b)}")


def check_broadcasts(name: str, x: Tensor, to_name: str, shape) -> None:
    """x must broadcast against ``shape`` without enlarging it (a mask against A y)."""
    ok = x.ndim <= len(shape) and all(
        s in (1, want) for s, want in zip(reversed(x.shape), reversed(tuple(shape)))
    )
    if not ok:
        raise ValueError(
            f"{name}: expected a shape that broadcasts to {to_name}, {_shape(tuple(shape))} "
            f"(each size equal or 1), got {_given(x)}"
        )


def check_same_device(name_a: str, a: Tensor, name_b: str, b: Tensor) -> None:
    """a and b must be on the same device."""
    if a.device != b.device:
        raise ValueError(f"{name_b}: expected a tensor on {name_a}'s device {a.device}, "
                         f"got {b.device}")  # fmt: skip


def check_finite(name: str, x) -> None:
    """Every entry of x must be finite (no NaN or inf)."""
    x = torch.as_tensor(x)
    if x.is_floating_point() and not bool(torch.isfinite(x).all()):
        bad = x[~torch.isfinite(x)].flatten()[0].item()
        raise ValueError(f"{name}: expected finite values, got {bad} (of {_given(x)})")


def check_image_range(name: str, x: Tensor, tol: float = IMAGE_TOL) -> None:
    """Images must be finite with values in [-1, 1] (up to ``IMAGE_TOL``), the model's range."""
    check_finite(name, x)
    lo, hi = float(x.min()), float(x.max())
    if lo < -1 - tol or hi > 1 + tol:
        raise ValueError(
            f"{name}: expected image values in [-1, 1], the range the model was trained on, "
            f"got values in [{lo:.4g}, {hi:.4g}]"
        )


def check_values(name: str, v, lo: float, hi: float, interval: str | None = None) -> Tensor:
    """Values (a number or a sequence) must be finite and in [lo, hi] (``interval`` says it
    in words). Returns them as a float64 tensor of shape (n,)."""
    if isinstance(v, numbers.Real) and not isinstance(v, bool):  # no tensor op needed
        if not (math.isfinite(v) and lo <= v <= hi):
            raise ValueError(f"{name}: expected values in {interval or f'[{lo:g}, {hi:g}]'}, "
                             f"got {float(v):g}")  # fmt: skip
        return torch.tensor([float(v)], dtype=torch.float64)
    try:
        vs = torch.as_tensor(v, dtype=torch.float64).reshape(-1)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"{name}: expected a number or a sequence of numbers, got {v!r}") from err
    if vs.numel() == 0:
        raise ValueError(f"{name}: expected at least one value, got none")
    bad = ~((vs >= lo) & (vs <= hi) & torch.isfinite(vs))
    if bool(bad.any()):
        where = interval or f"[{lo:g}, {hi:g}]"
        raise ValueError(f"{name}: expected values in {where}, got {vs[bad][0].item():g}")
    return vs


def check_times(
    name: str, t, eps: float, T: float, *, descending: bool = False, interval: str | None = None
) -> Tensor:
    """Times must be finite, in [eps, T] up to ``TIME_RTOL``, and strictly descending if asked.

    Returns them as a float64 tensor of shape (n,). [eps, T] is where the consistency
    function is defined (Song et al. 2023, Sec. 3); other callers pass their own interval,
    e.g. (0, inf) for the noise level of a denoiser, described by ``interval``.
    """
    where = interval or f"[eps, T] = [{eps:g}, {T:g}]"
    try:
        ts = check_values(name, t, eps * (1 - TIME_RTOL), T * (1 + TIME_RTOL), where)
    except ValueError as err:
        raise ValueError(str(err).replace("expected values", "expected times")) from None
    if descending and bool((ts[1:] >= ts[:-1]).any()):
        raise ValueError(f"{name}: expected strictly descending times, got {ts.tolist()}")
    return ts


def check_count(name: str, n, minimum: int, what: str = "") -> int:
    """n must be an integer >= minimum; ``what`` says why (e.g. "a U-statistic needs 2")."""
    if isinstance(n, bool) or not isinstance(n, numbers.Integral):
        raise TypeError(f"{name}: expected an integer, got {n!r}")
    if n < minimum:
        why = f" ({what})" if what else ""
        raise ValueError(f"{name}: expected an integer >= {minimum}{why}, got {n}")
    return int(n)


def check_shape(name: str, shape) -> tuple[int, ...]:
    """A shape (B, *D): a sequence of integers >= 1, the batch size B first."""
    shape = (shape,) if isinstance(shape, numbers.Integral) else shape
    ok = isinstance(shape, tuple | list | torch.Size) and len(shape) > 0
    if not ok or not all(isinstance(s, numbers.Integral) and s >= 1 for s in shape):
        raise ValueError(f"{name}: expected a shape (B, *D) of integers >= 1, got {shape!r}")
    return tuple(int(s) for s in shape)


def check_number(name: str, v, lo: float = -math.inf, hi: float = math.inf) -> float:
    """v must be a finite real number in [lo, hi]."""
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise TypeError(f"{name}: expected a number, got {v!r}")
    if not (math.isfinite(v) and lo <= v <= hi):
        raise ValueError(f"{name}: expected a finite number in [{lo:g}, {hi:g}], got {v!r}")
    return float(v)


def check_clip(clip) -> None:
    """clip is None or a pair (low, high) with low < high."""
    ok = isinstance(clip, tuple | list) and len(clip) == 2 and float(clip[0]) < float(clip[1])
    if clip is not None and not ok:
        raise ValueError(f"clip: expected None or (low, high) with low < high, got {clip!r}")
