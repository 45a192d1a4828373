"""Device choice, seeding and quick mode: the three switches every notebook sets first."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["default_device", "seed_everything", "quick_mode", "sized"]


def default_device() -> torch.device:
    """CUDA when present, else the CPU."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


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
