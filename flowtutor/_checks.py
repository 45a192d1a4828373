"""Shared input validation.

Every public function of flowtutor validates its arguments here, so that bad input fails early
with a ``TypeError`` (wrong kind of object) or ``ValueError`` (wrong shape, non-finite values,
invalid parameter, mismatched devices) whose message names the argument and what was expected.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from numbers import Real

import torch

__all__ = [
    "check_tensor",
    "check_points",
    "check_positive",
    "check_nonnegative",
    "check_int",
    "check_choice",
    "check_callable",
    "check_same_device",
    "check_square",
]


def check_tensor(
    x: object,
    name: str,
    *,
    ndim: int | None = None,
    finite: bool = True,
    floating: bool = True,
) -> torch.Tensor:
    """Return ``x`` if it is a tensor of the expected rank with finite floating values."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(x.shape)}")
    if finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_points(x: object, name: str, *, d: int | None = None, finite: bool = True) -> torch.Tensor:
    """Return ``x`` if it is a batch of points of shape ``(n, d)`` with ``n >= 1``."""
    x = check_tensor(x, name, finite=finite)
    if x.ndim != 2 or x.shape[0] < 1:
        raise ValueError(f"{name} must have shape (n, d) with n >= 1, got shape {tuple(x.shape)}")
    if d is not None and x.shape[1] != d:
        raise ValueError(f"{name} must have shape (n, {d}), got shape {tuple(x.shape)}")
    return x


def _as_float(value: object, name: str) -> float:
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise TypeError(f"{name} must be a real number, got a tensor of shape {tuple(value.shape)}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    return value


def check_positive(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a finite number ``> 0``."""
    v = _as_float(value, name)
    if v <= 0:
        raise ValueError(f"{name} must be > 0, got {v}")
    return v


def check_nonnegative(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a finite number ``>= 0``."""
    v = _as_float(value, name)
    if v < 0:
        raise ValueError(f"{name} must be >= 0, got {v}")
    return v


def check_int(value: object, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_choice(value: object, name: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value  # type: ignore[return-value]


def check_callable(value: object, name: str) -> Callable:
    """Return ``value`` if it is callable."""
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")
    return value


def check_same_device(**tensors: torch.Tensor) -> torch.device:
    """Return the common device of the named tensors, or raise naming the mismatch."""
    items = [(k, t) for k, t in tensors.items() if isinstance(t, torch.Tensor)]
    first_name, first = items[0]
    for k, t in items[1:]:
        if t.device != first.device:
            raise ValueError(
                f"{k} is on {t.device} but {first_name} is on {first.device}; "
                "move them to the same device"
            )
    return first.device


def check_square(m: object, name: str, *, d: int | None = None) -> torch.Tensor:
    """Return ``m`` if it is a finite square matrix (of size ``d`` if given)."""
    m = check_tensor(m, name, ndim=2)
    if m.shape[0] != m.shape[1] or (d is not None and m.shape[0] != d):
        want = f"({d}, {d})" if d is not None else "square"
        raise ValueError(f"{name} must be {want}, got shape {tuple(m.shape)}")
    return m
