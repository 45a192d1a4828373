"""Small networks for velocity, score and energy fields, with a time embedding."""

from __future__ import annotations

import math
from numbers import Real

import torch
from torch import nn

from ._checks import check_choice, check_generator, check_int, check_points, check_positive

__all__ = ["MLP", "TimeEmbedding", "VelocityMLP"]

_ACTIVATIONS = {"silu": nn.SiLU, "tanh": nn.Tanh, "softplus": nn.Softplus, "relu": nn.ReLU, "elu": nn.ELU}


class MLP(nn.Sequential):
    """``d_in -> hidden -> ... -> d_out`` with ``n_layers`` hidden layers and a smooth activation."""

    def __init__(self, d_in: int, d_out: int, hidden: int = 64, n_layers: int = 3, activation: str = "silu"):
        check_int(d_in, "d_in")
        check_int(d_out, "d_out")
        check_int(hidden, "hidden")
        check_int(n_layers, "n_layers")
        check_choice(activation, "activation", tuple(_ACTIVATIONS))
        layers: list[nn.Module] = []
        width = d_in
        for _ in range(n_layers):
            layers += [nn.Linear(width, hidden), _ACTIVATIONS[activation]()]
            width = hidden
        layers.append(nn.Linear(width, d_out))
        super().__init__(*layers)


class TimeEmbedding(nn.Module):
    """``t -> (t, sin(2 pi k t), cos(2 pi k t))_{k=1..n_freq}`` for ``t`` a scalar or ``(n,)`` tensor."""

    def __init__(self, n_freq: int = 4):
        super().__init__()
        check_int(n_freq, "n_freq", minimum=0)
        self.register_buffer("freqs", 2 * math.pi * torch.arange(1, n_freq + 1, dtype=torch.float32))
        self.dim = 1 + 2 * n_freq

    def forward(self, t: torch.Tensor, n: int) -> torch.Tensor:
        t = torch.as_tensor(t, dtype=self.freqs.dtype, device=self.freqs.device).reshape(-1, 1).expand(n, 1)
        angles = t * self.freqs
        return torch.cat([t, torch.sin(angles), torch.cos(angles)], dim=1)


class VelocityMLP(nn.Module):
    """A time-dependent field ``v(t, x)`` in ``R^d`` with the velocity-field signature (``t`` scalar or ``(n,)``).

    With ``fourier = m > 0`` the network sees ``(x, sin 2 pi B x, cos 2 pi B x)`` besides the time embedding, where
    ``B`` is a fixed ``(m, d)`` matrix of ``N(0, fourier_scale^2)`` frequencies (random Fourier features, Tancik et
    al. 2020): an MLP of smooth activations is slow to learn functions that vary on short scales, such as the
    velocity near a density with sharp edges, and these features supply the short scales. ``B`` is drawn from
    ``generator`` (or the global generator, seeded by :func:`flowtutor.seed_everything`) and saved with the weights.
    """

    def __init__(self, d: int, hidden: int = 64, n_layers: int = 3, n_freq: int = 4, activation: str = "silu",
                 fourier: int = 0, fourier_scale: float = 0.5, generator: torch.Generator | None = None):
        super().__init__()
        self.d = check_int(d, "d")
        check_int(fourier, "fourier", minimum=0)
        check_positive(fourier_scale, "fourier_scale")
        check_generator(generator)
        self.embed = TimeEmbedding(n_freq)
        frequencies = torch.randn(fourier, d, generator=generator) * fourier_scale
        self.register_buffer("fourier_b", 2 * math.pi * frequencies)
        self.net = MLP(d + 2 * fourier + self.embed.dim, d, hidden, n_layers, activation)

    def forward(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        check_points(x, "x", d=self.d, finite=False)  # no value check: this runs at every solver step
        if isinstance(t, bool) or not isinstance(t, (torch.Tensor, Real)):
            raise TypeError(f"t must be a number or a tensor, got {type(t).__name__}")
        if isinstance(t, torch.Tensor) and t.numel() != 1 and tuple(t.shape) != (x.shape[0],):
            raise ValueError(f"t must hold one time or shape ({x.shape[0]},), got shape {tuple(t.shape)}")
        features = [x]
        if self.fourier_b.shape[0]:
            angles = x @ self.fourier_b.to(x.dtype).T
            features += [torch.sin(angles), torch.cos(angles)]
        return self.net(torch.cat([*features, self.embed(t, x.shape[0]).to(x.dtype)], dim=1))
