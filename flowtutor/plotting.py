"""Plotting helpers: densities on grids, particles, trajectories, convergence plots, animations."""

from __future__ import annotations

import re

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import animation
from matplotlib.ticker import NullFormatter

from ._checks import check_int, check_positive, check_real
from .metrics import _positive_vector, loglog_slope
from .pde import Grid2D

__all__ = ["COLUMN_WIDTH", "panels", "plot_density", "plot_samples", "plot_trajectories", "plot_convergence", "animate_flow", "animation_html"]


COLUMN_WIDTH = 8.2
"""The widest figure, in inches, for the book's pages: at 100 dpi it is 820 px, which a cell's output column
(688 px in a 1280 px window, 757 px at 1366) shows at 0.84 of its size or more."""


def panels(n: int, ncols: int = 3, row_height: float = 2.8, width: float = COLUMN_WIDTH, **subplot_kw):
    """A figure of ``n`` axes in rows of at most ``ncols``, ``width`` inches wide (the text column by default) and
    ``row_height`` inches per row, laid out by matplotlib's constrained layout.

    Returns ``(fig, axes)`` with ``axes`` a flat array of exactly ``n`` axes, read row by row (the unused cells of
    the last row are removed). ``subplot_kw`` goes to ``plt.subplots`` (``sharex``, ``sharey``, ...).
    """
    n, ncols = check_int(n, "n"), check_int(ncols, "ncols")
    row_height, width = check_positive(row_height, "row_height"), check_positive(width, "width")
    ncols = min(ncols, n)
    nrows = -(-n // ncols)
    subplot_kw.setdefault("layout", "constrained")
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, row_height * nrows), squeeze=False, **subplot_kw)
    axes = axes.ravel()
    for ax in axes[n:]:
        ax.remove()
    return fig, axes[:n]


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _array(x, name: str, shape: tuple[int | None, ...]) -> np.ndarray:
    """``x`` (a tensor or an array) as a NumPy array of the given shape (``None``: any size)."""
    if not isinstance(x, (torch.Tensor, np.ndarray)):
        raise TypeError(f"{name} must be a torch.Tensor or a NumPy array, got {type(x).__name__}")
    p = _np(x)
    if p.ndim != len(shape) or any(k is not None and k != m for k, m in zip(shape, p.shape)):
        want = "(" + ", ".join("n" if k is None else str(k) for k in shape) + ")"
        raise ValueError(f"{name} must have shape {want}, got {p.shape}")
    return p


def _check_grid(grid: object) -> Grid2D:
    if not isinstance(grid, Grid2D):
        raise TypeError(f"grid must be a Grid2D, got {type(grid).__name__}")
    return grid


def plot_density(values: torch.Tensor, grid: Grid2D, ax=None, title: str | None = None, cmap: str = "viridis",
                 **kw):
    """Show density values ``(nx, ny)`` on ``grid`` as an image (x to the right, y up)."""
    _check_grid(grid)
    values = _array(values, "values", (grid.x.n, grid.y.n))
    ax = ax or plt.gca()
    img = ax.imshow(values.T, origin="lower", extent=grid.extent, cmap=cmap, aspect="equal", **kw)
    if title:
        ax.set_title(title)
    return img


def plot_samples(x: torch.Tensor, ax=None, title: str | None = None, s: float = 2, alpha: float = 0.5, **kw):
    """Scatter a batch of 2-D points."""
    p = _array(x, "x", (None, 2))
    ax = ax or plt.gca()
    ax.scatter(p[:, 0], p[:, 1], s=s, alpha=alpha, **kw)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def plot_trajectories(traj: torch.Tensor, ax=None, n_show: int = 50, color: str = "k", **kw):
    """Draw the paths of ``n_show`` particles of a trajectory ``(T, n, 2)``, start in blue, end in red."""
    p = _array(traj, "traj", (None, None, 2))[:, : check_int(n_show, "n_show")]
    ax = ax or plt.gca()
    ax.plot(p[:, :, 0], p[:, :, 1], color=color, lw=0.6, alpha=0.6, **kw)
    ax.scatter(p[0, :, 0], p[0, :, 1], s=6, c="tab:blue", zorder=3, label="start")
    ax.scatter(p[-1, :, 0], p[-1, :, 1], s=6, c="tab:red", zorder=3, label="end")
    ax.set_aspect("equal")
    return ax


def plot_convergence(h: Sequence[float], errors: Sequence[float], ax=None, label: str = "", reference: float | None = None):
    """Log-log plot of errors against a size, with the fitted slope in the legend and an optional reference slope."""
    h, errors = _positive_vector(h, "h"), _positive_vector(errors, "errors")
    if h.shape != errors.shape:
        raise ValueError(f"h and errors must have the same length, got {h.size} and {errors.size}")
    if reference is not None:
        check_real(reference, "reference")
    ax = ax or plt.gca()
    slope = loglog_slope(h, errors)
    ax.loglog(h, errors, "o-", label=f"{label} (slope {slope:.2f})")
    if reference is not None:
        h = np.asarray(h, dtype=float)
        ax.loglog(h, errors[0] * (h / h[0]) ** reference, "k--", lw=0.8, label=f"slope {reference:g}")
    ax.xaxis.set_minor_formatter(NullFormatter())  # decade labels only: minor labels collide
    ax.yaxis.set_minor_formatter(NullFormatter())
    ax.legend()
    return slope


def animate_flow(traj: torch.Tensor, times: Sequence[float], densities: torch.Tensor | None = None,
                 grid: Grid2D | None = None, interval: int = 120, n_show: int = 400):
    """An animation of particles ``(T, n, 2)`` moving over the densities ``(T, nx, ny)`` on ``grid``.

    Returns a ``matplotlib.animation.FuncAnimation``; in a notebook show it with
    ``IPython.display.HTML(animation_html(anim))``.
    """
    p = _array(traj, "traj", (None, None, 2))[:, : check_int(n_show, "n_show")]
    times = _array(torch.as_tensor(times, dtype=torch.float64) if isinstance(times, (list, tuple)) else times, "times",
                   (p.shape[0],))
    if not np.isfinite(times).all():
        raise ValueError("times must be finite")
    check_int(interval, "interval")
    if densities is not None:
        if grid is None:
            raise ValueError("grid is needed to show densities")
        dens = _array(densities, "densities", (p.shape[0], _check_grid(grid).x.n, grid.y.n))
    elif grid is not None:
        _check_grid(grid)
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    img = None
    if densities is not None:
        img = ax.imshow(dens[0].T, origin="lower", extent=grid.extent, cmap="Blues", vmin=0, vmax=dens.max())
    scat = ax.scatter(p[0, :, 0], p[0, :, 1], s=3, c="tab:red")
    lo, hi = p.min(axis=(0, 1)), p.max(axis=(0, 1))
    if grid is not None:
        ax.set_xlim(grid.x.a, grid.x.b)
        ax.set_ylim(grid.y.a, grid.y.b)
    else:
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
    title = ax.set_title(f"t = {times[0]:.2f}")

    def update(k: int):
        scat.set_offsets(p[k])
        if img is not None:
            img.set_data(dens[k].T)
        title.set_text(f"t = {times[k]:.2f}")
        return (scat, title) if img is None else (scat, title, img)

    anim = animation.FuncAnimation(fig, update, frames=len(p), interval=interval, blit=False)
    plt.close(fig)
    return anim


def animation_html(anim: animation.Animation) -> str:
    """``anim.to_jshtml()`` without the style sheet that matplotlib's player loads from a CDN (Font Awesome 4, for
    its button icons): the book's pages bring their own Font Awesome, so the player works offline."""
    if not isinstance(anim, animation.Animation):
        raise TypeError(f"anim must be a matplotlib.animation.Animation, got {type(anim).__name__}")
    return re.sub(r"<link[^>]*//[^>]*font-awesome[^>]*>", "", anim.to_jshtml())

