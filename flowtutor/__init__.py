"""flowtutor: the code of the executable textbook on flow-based generative models.

One idea runs through it: a generative flow is a velocity field ``v(t, x)`` that moves a density
along the continuity equation ``d_t rho + div(rho v) = 0``. Time runs from ``t = 0`` (base or
noise) to ``t = 1`` (data); methods stated the other way round are converted by
:func:`flowtutor.flow.reverse_time`.
"""

from . import blocks, cnf, compare, control, data, diffusion, divergence, energy, flow, gaussian, guidance, jko, kac, matching, metrics, nets, pde, plotting, ratio, sde, training
from ._runtime import default_device, generator_on, quick_mode, seed_everything, sized
from .flow import ODEFlow, reverse_time

__all__ = [
    "default_device",
    "generator_on",
    "seed_everything",
    "quick_mode",
    "sized",
    "ODEFlow",
    "reverse_time",
    "blocks",
    "cnf",
    "compare",
    "control",
    "data",
    "diffusion",
    "divergence",
    "energy",
    "flow",
    "gaussian",
    "guidance",
    "jko",
    "kac",
    "matching",
    "metrics",
    "nets",
    "pde",
    "plotting",
    "ratio",
    "sde",
    "training",
]

__version__ = "0.1.0"
