"""A flow made of ODE blocks, stated data-to-noise as JKO flows and local flow matching state it.

Block ``n`` (``n = 0, ..., N-1``) moves ``x_n`` to ``x_{n+1}`` by ``dx/ds = u_n(s, x)``, ``s`` in [0, 1]
(eq. ``ch5-block``); the forward process ``x_0 -> x_N`` carries the data towards ``q = N(0, I)``.
Generation is the reverse process: draw ``z ~ q`` and invert the blocks from the last to the first,
each in the book's noise-to-data time through :func:`flowtutor.flow.reverse_time`. The density of
the generated law, ``log q_0(x) = log q(x_N) + sum_n int_0^1 div u_n(s, x_n(s)) ds`` (eq. ``ch5-gen-density``),
is the book's one likelihood routine, :meth:`ODEFlow.log_prob`, applied block by block; so is the density of the
forward process, ``log p_N(z) = log p_0(x_0) - sum_n int_0^1 div u_n(s, x_n(s)) ds`` (eq. ``ch5-forward-density``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import nn

from ._checks import check_bool, check_callable, check_generator, check_int, check_points, check_positive, check_solver
from .flow import ODEFlow, reverse_time
from .nets import VelocityMLP

__all__ = ["BlockFlow", "TRAIN_SOLVER", "EVAL_SOLVER"]

TRAIN_SOLVER = {"method": "rk4", "n_steps": 2}
EVAL_SOLVER = {"method": "dopri5", "rtol": 1e-5, "atol": 1e-5}


class _Scaled(nn.Module):
    """``u(s, x) = scale * net(s, x / scale)``: the network sees inputs of unit size."""

    def __init__(self, net: nn.Module, scale: float):
        super().__init__()
        self.net, self.scale = net, scale

    def forward(self, s: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return self.net(s, x / self.scale) * self.scale


def _gammas(gammas: Sequence[float]) -> list[float]:
    if isinstance(gammas, (str, bytes)) or not isinstance(gammas, (Sequence, torch.Tensor)):
        raise TypeError(f"gammas must be a sequence of step sizes, got {type(gammas).__name__}")
    values = [check_positive(g, f"gammas[{i}]") for i, g in enumerate(gammas)]
    if not values:
        raise ValueError("gammas must hold at least one step size")
    return values


class BlockFlow(nn.Module):
    """``N = len(gammas)`` ODE blocks in ``R^d`` with the base ``q = N(0, I)`` at the noise end (eq. ``ch5-block``).

    ``gammas[n]`` is block ``n``'s step: the JKO step size (chapter 5, :func:`flowtutor.jko.fit_jko`) or the
    OU time it matches (:func:`flowtutor.jko.fit_local_matching`). Each block is a :class:`VelocityMLP`
    (``hidden``, ``n_layers``, ``n_freq``, ``activation``, random Fourier features ``fourier``, ``fourier_scale``),
    wrapped as ``scale * net(s, x / scale)``; or pass
    ``blocks``, one field module per step (each taking ``(s, x)`` and returning the shape of ``x``).
    Solver options (``method`` with ``n_steps``, or ``rtol``/``atol``) are passed per call; the default is
    adaptive dopri5 at tolerance 1e-5.
    """

    def __init__(self, d: int, gammas: Sequence[float], *, hidden: int = 64, n_layers: int = 3, n_freq: int = 2,
                 activation: str = "tanh", fourier: int = 0, fourier_scale: float = 0.5, scale: float = 1.0,
                 blocks: Sequence[nn.Module] | None = None):
        super().__init__()
        self.d = check_int(d, "d")
        self.gammas = _gammas(gammas)
        scale = check_positive(scale, "scale")
        if blocks is None:
            blocks = [_Scaled(VelocityMLP(d, hidden=hidden, n_layers=n_layers, n_freq=n_freq, activation=activation,
                                          fourier=fourier, fourier_scale=fourier_scale), scale) for _ in self.gammas]
        else:
            if isinstance(blocks, nn.Module) or not isinstance(blocks, Sequence):
                raise TypeError(f"blocks must be a sequence of nn.Module fields, got {type(blocks).__name__}")
            if len(blocks) != len(self.gammas):
                raise ValueError(f"blocks must hold one field per step: got {len(blocks)} blocks for "
                                 f"{len(self.gammas)} gammas")
            for i, b in enumerate(blocks):
                if not isinstance(b, nn.Module):
                    raise TypeError(f"blocks[{i}] must be an nn.Module field u(s, x), got {type(b).__name__}")
                if getattr(b, "d", d) != d:
                    raise ValueError(f"blocks[{i}] acts in dimension {b.d}, the flow in dimension {d}")
        self.blocks = nn.ModuleList(blocks)
        self.nfe = 0  # field evaluations of the last encode, decode or log_prob, all blocks together

    def __len__(self) -> int:
        return len(self.blocks)

    @property
    def base(self) -> torch.distributions.MultivariateNormal:
        """The law ``q = N(0, I)`` the forward process aims at (the generation's base)."""
        p = next(self.parameters(), None)
        dtype, device = (p.dtype, p.device) if p is not None else (torch.get_default_dtype(), "cpu")
        return torch.distributions.MultivariateNormal(torch.zeros(self.d, dtype=dtype, device=device),
                                                      torch.eye(self.d, dtype=dtype, device=device))

    def _range(self, start: int, stop: int | None) -> range:
        start = check_int(start, "start", minimum=0)
        stop = len(self) if stop is None else check_int(stop, "stop", minimum=0)
        if not start <= stop <= len(self):
            raise ValueError(f"need 0 <= start <= stop <= {len(self)} (the number of blocks), got start={start}, "
                             f"stop={stop}")
        return range(start, stop)

    def _solver(self, solver: dict | None) -> dict:
        check_solver(solver)
        return solver or EVAL_SOLVER

    def encode(self, x: torch.Tensor, *, start: int = 0, stop: int | None = None, solver: dict | None = None,
               trajectory: bool = False) -> torch.Tensor | list[torch.Tensor]:
        """The forward process: push ``x`` (samples of ``p_start``) through blocks ``start, ..., stop - 1``.

        Returns ``x_stop``, or with ``trajectory=True`` the list ``[x_start, ..., x_stop]``.
        """
        check_points(x, "x", d=self.d)
        check_bool(trajectory, "trajectory")
        opts = self._solver(solver)
        out, self.nfe = [x], 0
        for n in self._range(start, stop):
            flow = ODEFlow(self.blocks[n], **opts)
            out.append(flow.push(out[-1]))
            self.nfe += flow.nfe
        return out if trajectory else out[-1]

    def decode(self, z: torch.Tensor, *, start: int = 0, stop: int | None = None,
               solver: dict | None = None) -> torch.Tensor:
        """The reverse process: invert blocks ``stop - 1, ..., start`` (``z`` a sample of level ``stop``).

        Each block is run in the book's noise-to-data time, ``v(t, x) = -u_n(1 - t, x)`` (:func:`reverse_time`).
        """
        check_points(z, "z", d=self.d)
        opts = self._solver(solver)
        x, self.nfe = z, 0
        for n in reversed(self._range(start, stop)):
            flow = ODEFlow(reverse_time(self.blocks[n]), **opts)
            x = flow.push(x)
            self.nfe += flow.nfe
        return x

    def log_prob(self, x: torch.Tensor, *, solver: dict | None = None, **divergence_options) -> torch.Tensor:
        """``log q_0(x)``, the density of the generated law (eq. ``ch5-gen-density``), by :meth:`ODEFlow.log_prob`.

        The generated law of level ``n`` is the push of level ``n + 1`` by block ``n``'s inverse; its density
        pulls ``x`` back through block ``n`` (that is, forward along ``u_n``) and adds the divergence integral.
        Keyword options are those of :meth:`ODEFlow.log_prob` (``divergence``, ``probe``, ...).
        """
        check_points(x, "x", d=self.d)
        opts = self._solver(solver)
        log_density, flows = self.base.log_prob, []
        for n in reversed(range(len(self))):  # level n's density from level n+1's, from the base down
            flows.append(ODEFlow(reverse_time(self.blocks[n]), **opts))
            log_density = _level(flows[-1], log_density, divergence_options)
        out = log_density(x)
        self.nfe = sum(f.nfe for f in flows)
        return out

    def log_prob_forward(self, z: torch.Tensor, log_p0: Callable[[torch.Tensor], torch.Tensor], *, start: int = 0,
                         stop: int | None = None, solver: dict | None = None, **divergence_options) -> torch.Tensor:
        """``log p_stop(z)``: the density of the forward process at level ``stop`` when level ``start`` has
        log-density ``log_p0`` (a callable, e.g. ``target.log_prob``), eq. ``ch5-forward-density``.

        Runs the other way from :meth:`log_prob`: ``z`` is pulled back through blocks ``stop - 1, ..., start``
        (the reverse process) and ``log_p0`` is evaluated where it lands, minus the divergence integrals.
        """
        check_points(z, "z", d=self.d)
        check_callable(log_p0, "log_p0")
        opts = self._solver(solver)
        log_density, flows = log_p0, []
        for n in self._range(start, stop):
            flows.append(ODEFlow(self.blocks[n], **opts))
            log_density = _level(flows[-1], log_density, divergence_options)
        out = log_density(z)
        self.nfe = sum(f.nfe for f in flows)
        return out

    def sample(self, n: int, *, solver: dict | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` generated samples: ``z ~ q`` decoded through every block."""
        check_int(n, "n")
        check_generator(generator)
        base = self.base
        z = torch.randn(n, self.d, dtype=base.loc.dtype, device=base.loc.device, generator=generator)
        return self.decode(z, solver=solver)


def _level(flow: ODEFlow, upper, options: dict):
    def log_density(x: torch.Tensor) -> torch.Tensor:
        return flow.log_prob(x, upper, **options)

    return log_density
