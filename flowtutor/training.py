"""One training loop for every chapter: progress bar, NaN guard, optional checkpoints."""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ._checks import check_bool, check_callable, check_int, check_positive

__all__ = ["fit", "progress_enabled"]


def progress_enabled(progress: bool = True) -> bool:
    """Progress bars are shown unless turned off, ``CI`` is set, or ``FLOWTUTOR_PROGRESS=0`` (the book build)."""
    check_bool(progress, "progress")
    return progress and not os.environ.get("CI") and os.environ.get("FLOWTUTOR_PROGRESS", "1") != "0"


def fit(
    loss_fn: Callable[[int], torch.Tensor],
    optimizer: torch.optim.Optimizer,
    n_steps: int,
    *,
    scheduler: torch.optim.lr_scheduler.LRScheduler | None = None,
    progress: bool = True,
    checkpoint: str | Path | None = None,
    checkpoint_every: int = 0,
    module: torch.nn.Module | None = None,
    clip_grad: float | None = None,
) -> list[float]:
    """Minimise ``loss_fn(step)`` for ``n_steps`` steps of ``optimizer``; return the loss history.

    Stops with ``FloatingPointError`` naming the step when the loss becomes NaN or infinite (a gradient that
    overflows makes the next loss non-finite: parameters are not checked at every step, which would cost a
    reduction over all gradients and, on a GPU, a sync; with ``clip_grad`` the total norm it computes is checked). With ``checkpoint`` and ``checkpoint_every > 0``, saves ``module``'s state and the
    optimizer's every ``checkpoint_every`` steps (and at the end).
    """
    check_callable(loss_fn, "loss_fn")
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError(f"optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
    check_int(n_steps, "n_steps")
    check_int(checkpoint_every, "checkpoint_every", minimum=0)
    if checkpoint is not None and module is None:
        raise ValueError("checkpoint needs module= (the network whose state is saved)")
    if scheduler is not None and not callable(getattr(scheduler, "step", None)):
        raise TypeError(f"scheduler must be a learning-rate scheduler (with .step()), got {type(scheduler).__name__}")
    if module is not None and not isinstance(module, torch.nn.Module):
        raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
    if clip_grad is not None:
        check_positive(clip_grad, "clip_grad")
    check_bool(progress, "progress")
    params = [p for g in optimizer.param_groups for p in g["params"]]
    history: list[float] = []
    bar = tqdm(range(n_steps), disable=not progress_enabled(progress), leave=False)
    for step in bar:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(step)
        value = loss.item()
        if not math.isfinite(value):
            after = " (the loss before was finite: the gradient of the step before may have overflowed)" if step else ""
            raise FloatingPointError(
                f"loss became {value} at step {step}{after}; hint: lower the learning rate, clip gradients "
                "(clip_grad=), check the data for NaN, or tighten the ODE solver's tolerances"
            )
        loss.backward()
        if clip_grad is not None:  # clipping computes the total norm anyway: check it (one sync)
            norm = torch.nn.utils.clip_grad_norm_(params, clip_grad)
            if not bool(torch.isfinite(norm)):
                raise FloatingPointError(f"a gradient became NaN or infinite at step {step}; hint: lower the "
                                         "learning rate or clip_grad")
        optimizer.step()
        if scheduler is not None:
            scheduler.step()
        history.append(value)
        if step % 10 == 0:
            bar.set_postfix(loss=f"{value:.4f}")
        last = step == n_steps - 1
        if checkpoint is not None and checkpoint_every and ((step + 1) % checkpoint_every == 0 or last):
            torch.save({"step": step, "model": module.state_dict(), "optimizer": optimizer.state_dict(),
                        "history": history}, checkpoint)
    if not all(bool(torch.isfinite(p).all()) for p in params):  # the last step's update has no next loss to show it
        raise FloatingPointError(f"a parameter became NaN or infinite at the last step ({n_steps - 1}); hint: lower "
                                 "the learning rate or set clip_grad=")
    return history
