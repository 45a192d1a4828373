"""The divergence of a velocity field: exact by autograd, or by the Hutchinson estimator.

For ``f: R^d -> R^d`` evaluated at a batch ``x`` of shape ``(n, d)``,

* exact (the divergence in eq. ``ch1-icov``): ``div f(x) = sum_i d f_i / d x_i``, one backward pass per coordinate;
* Hutchinson (chapter 3): ``div f(x) = E_eps[eps^T J_f(x) eps]`` for probes with ``E[eps eps^T] = I``
  (Rademacher or standard Gaussian), one vector-Jacobian product per probe.
"""

from __future__ import annotations

from numbers import Integral

import torch

from ._checks import (
    check_bool,
    check_choice,
    check_device,
    check_dtype,
    check_generator,
    check_points,
    check_same_device,
    check_tensor,
)

__all__ = ["divergence_exact", "jacobian", "divergence_hutchinson", "sample_probes"]


def _check_pair(fx: torch.Tensor, x: torch.Tensor, create_graph: bool, frobenius: bool) -> None:
    """Shapes, types and devices only: these run at every evaluation inside ODE solves, where a value check
    would cost a device sync (``ODEFlow`` reports non-finite values after the solve)."""
    check_points(x, "x", finite=False)
    check_points(fx, "fx", finite=False)
    check_bool(create_graph, "create_graph")
    check_bool(frobenius, "frobenius")
    if fx.shape != x.shape:
        raise ValueError(f"fx must have the shape of x {tuple(x.shape)}, got {tuple(fx.shape)}")
    check_same_device(x=x, fx=fx)
    if not x.requires_grad:
        raise ValueError("x must require grad and fx must be computed from it (x.requires_grad_())")


def divergence_exact(fx: torch.Tensor, x: torch.Tensor, *, create_graph: bool = False,
                     frobenius: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Exact divergence ``sum_i d fx_i / d x_i`` of shape ``(n,)`` (as in eq. ``ch1-icov``); costs d backward passes.

    ``fx`` must have been computed from ``x`` (which requires grad), row by row, so that row k of
    ``fx`` depends only on row k of ``x``. Use ``create_graph=True`` to differentiate the result.
    With ``frobenius=True`` also returns ``||d fx / d x||_F^2`` per row (from the same passes).
    """
    _check_pair(fx, x, create_graph, frobenius)
    div = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    frob = torch.zeros_like(div)
    for i in range(x.shape[1]):
        (g,) = torch.autograd.grad(fx[:, i].sum(), x, create_graph=create_graph, retain_graph=True)
        div = div + g[:, i]
        if frobenius:
            frob = frob + (g**2).sum(dim=1)
    return (div, frob) if frobenius else div


def jacobian(fx: torch.Tensor, x: torch.Tensor, *, create_graph: bool = False) -> torch.Tensor:
    """The Jacobian ``d fx / d x`` row by row, shape ``(n, d, d)`` with ``[k, i, j] = d fx_i / d x_j`` at point ``k``
    (the same d backward passes as :func:`divergence_exact`, whose result is its trace)."""
    _check_pair(fx, x, create_graph, False)
    rows = [torch.autograd.grad(fx[:, i].sum(), x, create_graph=create_graph, retain_graph=True)[0]
            for i in range(x.shape[1])]
    return torch.stack(rows, 1)


def sample_probes(
    shape: tuple[int, ...],
    kind: str = "rademacher",
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Probes with ``E[eps eps^T] = I``: Rademacher (+-1) or standard Gaussian.

    The generator, if given, must live on ``device`` (torch's rule for random draws).
    """
    if not isinstance(shape, (tuple, list, torch.Size)) or not all(
            isinstance(k, Integral) and not isinstance(k, bool) and k >= 0 for k in shape):
        raise TypeError(f"shape must be a tuple of sizes >= 0, got {shape!r}")
    check_choice(kind, "kind", ("rademacher", "gaussian"))
    check_dtype(dtype)
    device = check_device(device)
    check_generator(generator, device=device)
    if kind == "gaussian":
        return torch.randn(shape, dtype=dtype, device=device, generator=generator)
    bits = torch.randint(0, 2, shape, device=device, generator=generator)
    return bits.to(dtype) * 2 - 1


def divergence_hutchinson(
    fx: torch.Tensor,
    x: torch.Tensor,
    probes: torch.Tensor,
    *,
    create_graph: bool = False,
    frobenius: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Hutchinson estimate of ``div fx`` of shape ``(n,)`` (chapter 3), averaged over the probes.

    ``probes`` has shape ``(k, n, d)`` (k probes per point) or ``(n, d)`` (one); draw it with
    :func:`sample_probes`. The estimate is unbiased; its variance for a linear field ``Ax`` and
    Rademacher probes is ``2(||A_s||_F^2 - sum_i A_ii^2) / k`` with ``A_s = (A + A^T)/2`` (Gaussian
    probes: ``2 ||A_s||_F^2 / k``). With ``frobenius=True`` also returns the unbiased estimate
    ``|eps^T J|^2`` of ``||J||_F^2`` from the same vector-Jacobian products.
    """
    _check_pair(fx, x, create_graph, frobenius)
    check_tensor(probes, "probes", finite=False)
    if probes.ndim == 2:
        probes = probes.unsqueeze(0)
    if probes.ndim != 3 or probes.shape[1:] != x.shape:
        raise ValueError(f"probes must have shape (k, {x.shape[0]}, {x.shape[1]}), got {tuple(probes.shape)}")
    check_same_device(x=x, probes=probes)
    total = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
    frob = torch.zeros_like(total)
    for eps in probes:
        (vjp,) = torch.autograd.grad(fx, x, grad_outputs=eps, create_graph=create_graph, retain_graph=True)
        total = total + (vjp * eps).sum(dim=1)
        if frobenius:
            frob = frob + (vjp**2).sum(dim=1)
    k = probes.shape[0]
    return (total / k, frob / k) if frobenius else total / k

