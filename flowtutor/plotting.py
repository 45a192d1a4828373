"""Plotting helpers: densities on grids, particles, trajectories, convergence plots, animations."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib import animation
from matplotlib.ticker import NullFormatter

from .metrics import loglog_slope
from .pde import Grid2D

__all__ = ["plot_density", "plot_samples", "plot_trajectories", "plot_convergence", "animate_flow"]


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def plot_density(values: torch.Tensor, grid: Grid2D, ax=None, title: str | None = None, cmap: str = "viridis",
                 **kw):
    """Show density values ``(nx, ny)`` on ``grid`` as an image (x to the right, y up)."""
    ax = ax or plt.gca()
    img = ax.imshow(_np(values).T, origin="lower", extent=grid.extent, cmap=cmap, aspect="equal", **kw)
    if title:
        ax.set_title(title)
    return img


def plot_samples(x: torch.Tensor, ax=None, title: str | None = None, s: float = 2, alpha: float = 0.5, **kw):
    """Scatter a batch of 2-D points."""
    ax = ax or plt.gca()
    p = _np(x)
    ax.scatter(p[:, 0], p[:, 1], s=s, alpha=alpha, **kw)
    ax.set_aspect("equal")
    if title:
        ax.set_title(title)
    return ax


def plot_trajectories(traj: torch.Tensor, ax=None, n_show: int = 50, color: str = "k", **kw):
    """Draw the paths of ``n_show`` particles of a trajectory ``(T, n, 2)``, start in blue, end in red."""
    ax = ax or plt.gca()
    p = _np(traj)[:, :n_show]
    ax.plot(p[:, :, 0], p[:, :, 1], color=color, lw=0.6, alpha=0.6, **kw)
    ax.scatter(p[0, :, 0], p[0, :, 1], s=6, c="tab:blue", zorder=3, label="start")
    ax.scatter(p[-1, :, 0], p[-1, :, 1], s=6, c="tab:red", zorder=3, label="end")
    ax.set_aspect("equal")
    return ax


def plot_convergence(h: Sequence[float], errors: Sequence[float], ax=None, label: str = "", reference: float | None = None):
    """Log-log plot of errors against a size, with the fitted slope in the legend and an optional reference slope."""
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
    ``IPython.display.HTML(anim.to_jshtml())``.
    """
    p = _np(traj)[:, :n_show]
    fig, ax = plt.subplots(figsize=(4.2, 4.2))
    img = None
    if densities is not None:
        if grid is None:
            raise ValueError("grid is needed to show densities")
        dens = _np(densities)
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
