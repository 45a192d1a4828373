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
    "check_real",
    "check_positive",
    "check_nonnegative",
    "check_interval",
    "check_time",
    "check_int",
    "check_bool",
    "check_choice",
    "check_callable",
    "check_same_device",
    "check_square",
    "check_covariance",
    "check_generator",
    "check_dtype",
    "check_device",
    "check_distribution",
    "check_pairs",
    "check_solver",
]


def check_tensor(
    x: object,
    name: str,
    *,
    ndim: int | None = None,
    finite: bool | str = True,
    floating: bool = True,
) -> torch.Tensor:
    """Return ``x`` if it is a tensor of the expected rank with finite floating values.

    ``finite=False`` skips the value check; ``finite="no-nan"`` allows ``+-inf`` but not NaN (inputs of
    ``log_prob``, log-densities that may be ``-inf``). Tensors on the ``meta`` device carry no values
    and are rejected.
    """
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if floating and not x.is_floating_point():
        raise TypeError(f"{name} must have a floating dtype, got {x.dtype}")
    if ndim is not None and x.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimension(s), got shape {tuple(x.shape)}")
    if x.is_meta:
        raise ValueError(f"{name} is on the meta device: it holds no values")
    if finite == "no-nan":
        if bool(torch.isnan(x).any()):
            raise ValueError(f"{name} contains NaN values")
    elif finite and not bool(torch.isfinite(x).all()):
        raise ValueError(f"{name} contains NaN or infinite values")
    return x


def check_points(x: object, name: str, *, d: int | None = None, finite: bool | str = True) -> torch.Tensor:
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


def check_real(value: object, name: str) -> float:
    """Return ``value`` as a float if it is a finite real number (a Python number or a one-element tensor)."""
    return _as_float(value, name)


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


def check_interval(value: object, name: str, low: float, high: float, *, open_low: bool = False,
                   open_high: bool = False) -> float:
    """Return ``value`` as a float if it is a finite number in the interval from ``low`` to ``high``
    (closed unless ``open_low``/``open_high``)."""
    v = _as_float(value, name)
    if v < low or v > high or (open_low and v == low) or (open_high and v == high):
        interval = f"{'(' if open_low else '['}{low:g}, {high:g}{')' if open_high else ']'}"
        raise ValueError(f"{name} must lie in {interval}, got {v}")
    return v


def check_time(t: object, name: str, *, n: int | None = None, low: float = 0.0, high: float = 1.0,
               values: bool = True) -> torch.Tensor:
    """Return ``t`` as a floating tensor if it is a number, a one-element tensor or a 1-D tensor (of shape
    ``(n,)`` if ``n`` is given) of times in ``[low, high]`` (the book's time runs over [0, 1]; NaN is rejected).
    ``values=False`` checks the type and shape only (the caller checks the range, e.g. in one sync with others)."""
    if isinstance(t, bool) or not isinstance(t, (Real, torch.Tensor)):
        raise TypeError(f"{name} must be a number or a tensor of times, got {type(t).__name__}")
    if isinstance(t, torch.Tensor):
        check_tensor(t, name, finite=False)
        if t.numel() != 1 and (t.ndim != 1 or t.numel() == 0 or (n is not None and t.shape[0] != n)):
            want = "one time or a 1-D tensor of times" if n is None else f"one time or shape ({n},)"
            raise ValueError(f"{name} must hold {want}, got shape {tuple(t.shape)}")
    else:
        t = torch.tensor(float(t), dtype=torch.float64)
    if values and not bool(((t >= low) & (t <= high)).all()):  # False for NaN as well
        raise ValueError(f"{name} must lie in [{low:g}, {high:g}] (and not be NaN), got {t.flatten()[:4].tolist()}")
    return t


def check_int(value: object, name: str, *, minimum: int = 1) -> int:
    """Return ``value`` if it is an integer ``>= minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_bool(value: object, name: str) -> bool:
    """Return ``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_choice(value: object, name: str, choices: Iterable[str]) -> str:
    """Return ``value`` if it is one of ``choices``."""
    choices = tuple(choices)
    if not isinstance(value, str) or value not in choices:
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


def check_covariance(m: object, name: str, *, d: int | None = None, definite: bool = False) -> torch.Tensor:
    """Return ``m`` if it is a finite symmetric positive semi-definite matrix (definite with ``definite=True``).

    Symmetry and the sign of the smallest eigenvalue are tested up to ``1000 * eps`` of the largest
    entry (``eps`` of the dtype), so matrices built in floating point (``L @ L.T``) pass.
    """
    m = check_square(m, name, d=d)
    v = m.detach()  # the checks need values only (and no graph)
    tol = 1000 * torch.finfo(v.dtype).eps * float(v.abs().max())
    if float((v - v.T).abs().max()) > tol:
        raise ValueError(f"{name} must be symmetric, got max |{name} - {name}^T| = {float((v - v.T).abs().max()):.3g}")
    smallest = float(torch.linalg.eigvalsh((v + v.T) / 2)[0])
    if definite and smallest <= 0:
        raise ValueError(f"{name} must be positive definite, got smallest eigenvalue {smallest:.3g}")
    if smallest < -tol:
        raise ValueError(f"{name} must be positive semi-definite, got smallest eigenvalue {smallest:.3g}")
    return m


def check_generator(generator: object, name: str = "generator", *, device: torch.device | str | None = None):
    """Return ``generator`` if it is ``None`` or a ``torch.Generator`` (on ``device``'s type, if given)."""
    if generator is None:
        return None
    if not isinstance(generator, torch.Generator):
        raise TypeError(f"{name} must be a torch.Generator or None, got {type(generator).__name__}")
    if device is not None and torch.device(generator.device).type != torch.device(device).type:
        raise ValueError(f"{name} is on {generator.device} but the draws are on {device}; "
                         "a generator must live on the device it draws on")
    return generator


def check_dtype(dtype: object, name: str = "dtype") -> torch.dtype:
    """Return ``dtype`` if it is a floating ``torch.dtype``."""
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"{name} must be a floating torch.dtype, got {dtype!r}")
    return dtype


def check_device(device: object, name: str = "device") -> torch.device:
    """Return ``device`` as a ``torch.device`` (from a device or a string such as ``"cpu"``)."""
    if isinstance(device, torch.device):
        return device
    if not isinstance(device, str):
        raise TypeError(f"{name} must be a torch.device or a string, got {type(device).__name__}")
    try:
        return torch.device(device)
    except RuntimeError as err:
        raise ValueError(f"{name} is not a device: {device!r}") from err


def check_distribution(dist: object, name: str) -> torch.distributions.Distribution:
    """Return ``dist`` if it is a ``torch.distributions.Distribution``."""
    if not isinstance(dist, torch.distributions.Distribution):
        raise TypeError(f"{name} must be a torch.distributions.Distribution, got {type(dist).__name__}")
    return dist


def check_pairs(x0: object, x1: object, *, same_n: bool = True, names: tuple[str, str] = ("x0", "x1")) -> None:
    """Validate two batches of points ``(n, d)`` and ``(m, d)`` (``m = n`` with ``same_n``) on one device."""
    a, b = names
    check_points(x0, a)
    check_points(x1, b)
    if x0.shape[1] != x1.shape[1]:
        raise ValueError(f"{a} and {b} must hold points of the same dimension, got {x0.shape[1]} and {x1.shape[1]}")
    if same_n and x0.shape[0] != x1.shape[0]:
        raise ValueError(f"{a} and {b} must hold the same number of points, got {x0.shape[0]} and {x1.shape[0]}")
    check_same_device(**{a: x0, b: x1})


def check_solver(solver: object, name: str = "solver") -> dict | None:
    """Return ``solver`` if it is ``None`` or a dict of :class:`~flowtutor.flow.ODEFlow` options."""
    if solver is not None and not isinstance(solver, dict):
        raise TypeError(f"{name} must be a dict of ODEFlow options (method, n_steps or rtol/atol) or None, "
                        f"got {type(solver).__name__}")
    return solver
