"""Device choice, seeding and quick mode: the three switches every notebook sets first."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

from ._checks import check_device, check_generator

__all__ = ["default_device", "generator_on", "seed_everything", "quick_mode", "sized"]


def default_device() -> torch.device:
    """The device the chapters train and sample on: ``FLOWTUTOR_DEVICE`` when set (``cpu``, ``cuda``, ``cuda:1``),
    else CUDA when present, else the CPU. A device that is named but absent is an error, not a silent CPU run."""
    name = os.environ.get("FLOWTUTOR_DEVICE", "").strip()
    if not name:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"FLOWTUTOR_DEVICE must name a device such as 'cpu' or 'cuda', got {name!r}") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"FLOWTUTOR_DEVICE is {name!r}, but CUDA is not available on this machine "
                         "(unset it, or set FLOWTUTOR_DEVICE=cpu)")
    try:
        torch.empty(1, device=device)
    except (RuntimeError, AssertionError) as err:  # an absent CUDA index, or a backend this build lacks
        raise ValueError(f"FLOWTUTOR_DEVICE is {name!r}, which this machine cannot use: {err}") from err
    return device


def generator_on(device: torch.device | str, generator: torch.Generator) -> torch.Generator:
    """``generator`` itself when it lives on ``device``, else a new generator there seeded with its initial seed.

    A chapter seeds one CPU generator for its float64 closed-form checks and draws its training and sampling
    randomness from ``generator_on(DEVICE, gen)``: on the CPU the two are one stream, so the CPU numbers do not
    depend on the device option; on a GPU the second stream is the GPU's own (other numbers, the same law).
    """
    device = check_device(device)
    check_generator(generator)
    if generator is None:
        raise TypeError("generator must be a torch.Generator, got None")
    if _same_device(generator.device, device):
        return generator
    return torch.Generator(device).manual_seed(generator.initial_seed())


def _same_device(a: torch.device, b: torch.device) -> bool:
    """``cuda`` and ``cuda:0`` name one device when the current device is 0."""
    if a.type != b.type:
        return False
    if a.type != "cuda":
        return True
    current = torch.cuda.current_device()
    return (a.index if a.index is not None else current) == (b.index if b.index is not None else current)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and PyTorch (all devices); return a CPU generator seeded the same.

    The same seed gives the same numbers on the CPU. On CUDA, some kernels are not deterministic;
    pass the returned generator where a function takes ``generator=`` to control sampling exactly.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, got {type(seed).__name__}")
    if seed < 0:
        raise ValueError(f"seed must be >= 0, got {seed}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def quick_mode() -> bool:
    """True when ``FLOWTUTOR_QUICK`` is set to a true value (1, true, yes, on).

    Quick mode lowers iteration counts and sample sizes only; the same cells and asserts run, each with a
    threshold (``sized(full, quick)``) between the trivial baseline and what that mode's budget measures.
    """
    return os.environ.get("FLOWTUTOR_QUICK", "").strip().lower() in {"1", "true", "yes", "on"}


def sized(full, quick):
    """Return ``quick`` in quick mode and ``full`` otherwise (iteration counts, sample sizes)."""
    return quick if quick_mode() else full
