"""Four ways of choosing ``v`` trained on one 2-D target under one budget, and measured the same way.

The methods: a maximum-likelihood CNF (chapter 3, trained as there), a JKO flow and local flow matching
(chapter 5, ``len(gammas)`` blocks sharing the budget), and flow matching on one global path (chapter 4).
All use MLPs of the same width and depth, batches of the same size and the same total number of Adam steps.
Each row reports ``NLL - H(p)`` on test data with its standard error (the paired estimate
:func:`flowtutor.metrics.kl_mc`, exact divergence, dopri5 at tolerance 1e-5), the W2 ratio
(:func:`flowtutor.metrics.w2_ratio`, ``w2_blocks`` blocks of ``n_w2`` points; 1 means as good as exact samples, with
its standard error), the training
time, and the number of field evaluations one sample sees in a dopri5 solve.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import torch

from ._checks import check_callable, check_choice, check_device, check_distribution, check_int, check_positive
from ._runtime import seed_everything
from .blocks import BlockFlow
from .cnf import CNF, fit_cnf
from .flow import ODEFlow
from .jko import fit_jko, fit_local_matching
from .matching import fit_matching
from .metrics import kl_mc, w2_ratio
from .nets import VelocityMLP

__all__ = ["METHODS", "LEARNING_RATES", "evaluate_generator", "compare_flows"]

METHODS = ("CNF", "JKO flow", "local FM", "global FM")
LEARNING_RATES = {"CNF": 3e-3, "JKO flow": 1e-2, "local FM": 3e-3, "global FM": 3e-3}  # each method's default


def evaluate_generator(target: torch.distributions.Distribution, log_prob: Callable[[torch.Tensor], torch.Tensor],
                       sample: Callable[[int], torch.Tensor], nfe: Callable[[], int], *, n_test: int = 5000,
                       n_w2: int = 1000, w2_blocks: int = 10) -> dict:
    """The measurements of every row: ``gap`` = ``NLL - H(p)`` on ``n_test`` fresh test points (paired, an
    Estimate), ``w2_ratio`` = :func:`flowtutor.metrics.w2_ratio` over ``w2_blocks`` blocks of ``n_w2`` points (an
    Estimate), and ``nfe``, the value of ``nfe()`` right after ``sample(n_w2 * w2_blocks)`` (the field evaluations
    of that sampling solve)."""
    check_distribution(target, "target")
    for f, name in ((log_prob, "log_prob"), (sample, "sample"), (nfe, "nfe")):
        check_callable(f, name)
    check_int(n_test, "n_test")
    check_int(n_w2, "n_w2", minimum=2)
    check_int(w2_blocks, "w2_blocks", minimum=2)
    with torch.no_grad():
        generated = sample(n_w2 * w2_blocks)
        n_eval = nfe()
        test, test2 = target.sample((n_w2 * w2_blocks,)), target.sample((n_w2 * w2_blocks,))
        x = target.sample((n_test,))
        gap = kl_mc(target.log_prob(x), log_prob(x))
        ratio = w2_ratio(generated, test, test2, n=n_w2)
    return {"gap": gap, "w2_ratio": ratio, "nfe": n_eval}


def compare_flows(target: torch.distributions.Distribution, n_steps: int, *,
                  gammas: Sequence[float] = (0.5, 0.75, 1.0, 1.5), methods: Sequence[str] = METHODS,
                  steps: dict[str, int] | None = None, lrs: dict[str, float] | None = None, hidden: int = 64,
                  n_layers: int = 3, batch: int = 256, scale: float = 2.0, n_test: int = 5000, n_w2: int = 1000,
                  w2_blocks: int = 10, seed: int = 0, device: torch.device | str = "cpu",
                  progress: bool = True) -> list[dict]:
    """Train each of ``methods`` on samples of ``target`` (with ``log_prob``) for ``n_steps`` Adam steps in total
    (or ``steps[method]``), with learning rates ``LEARNING_RATES`` updated by ``lrs``, and evaluate each with
    :func:`evaluate_generator`. The networks train on ``device``, which must be where ``target`` samples.

    CNF: :class:`~flowtutor.cnf.CNF` with base ``N(0, 3^2 I)`` and chapter 3's training (Hutchinson, RK4 with 8
    steps). JKO flow / local FM: a :class:`~flowtutor.blocks.BlockFlow` with steps ``gammas``, the steps split
    evenly over the blocks (inputs scaled by ``scale``). Global FM: a :class:`~flowtutor.nets.VelocityMLP` from
    ``N(0, I)`` on the straight-line path. Returns one dict per method: ``method``, ``steps``, ``lr``,
    ``seconds`` (training), and the entries of :func:`evaluate_generator`.
    """
    check_distribution(target, "target")
    check_int(n_steps, "n_steps")
    if isinstance(methods, str):
        raise TypeError(f"methods must be a sequence of names from {METHODS}, got a string")
    for m in methods:
        check_choice(m, "methods", METHODS)
    for name, table in (("steps", steps), ("lrs", lrs)):
        if table is not None and (not isinstance(table, dict) or set(table) - set(METHODS)):
            raise ValueError(f"{name} must be a dict keyed by method names {METHODS}, got {table!r}")
    budget = {m: check_int(n, f"steps[{m!r}]") for m, n in {**dict.fromkeys(METHODS, n_steps), **(steps or {})}.items()}
    rates = {m: check_positive(r, f"lrs[{m!r}]") for m, r in {**LEARNING_RATES, **(lrs or {})}.items()}
    check_int(n_test, "n_test")
    check_int(n_w2, "n_w2", minimum=2)
    check_int(w2_blocks, "w2_blocks", minimum=2)
    check_positive(scale, "scale")
    device = check_device(device)
    rows = []
    for method in methods:
        seed_everything(seed)
        n, lr = budget[method], rates[method]
        begin = time.perf_counter()
        if method == "CNF":
            model = CNF(2, hidden=hidden, n_layers=n_layers, scale=3.0).to(device)
            fit_cnf(model, target.sample, n, batch=batch, lr=lr, divergence="hutchinson", progress=progress)
            flow, base = model.flow(), model.base
        elif method in ("JKO flow", "local FM"):
            model = BlockFlow(2, gammas, hidden=hidden, n_layers=n_layers, scale=scale).to(device)
            fit = fit_jko if method == "JKO flow" else fit_local_matching
            fit(model, target.sample, max(1, n // len(gammas)), batch=batch, lr=lr, progress=progress)
        else:
            model = VelocityMLP(2, hidden=hidden, n_layers=n_layers).to(device)
            fit_matching(model, lambda shape: (torch.randn(*shape, 2, device=device), target.sample(shape)), n,
                         batch=batch, lr=lr, progress=progress)
            flow = ODEFlow(model)
            base = torch.distributions.MultivariateNormal(torch.zeros(2, device=device), torch.eye(2, device=device))
        seconds = time.perf_counter() - begin
        if isinstance(model, BlockFlow):
            log_prob, sample, nfe = model.log_prob, model.sample, lambda m=model: m.nfe
        else:
            log_prob = lambda x, f=flow, b=base: f.log_prob(x, b)
            sample = lambda k, f=flow, b=base: f.push(b.sample((k,)))
            nfe = lambda f=flow: f.nfe
        rows.append({"method": method, "steps": n, "lr": lr, "seconds": seconds,
                     **evaluate_generator(target, log_prob, sample, nfe, n_test=n_test, n_w2=n_w2,
                                        w2_blocks=w2_blocks)})
    return rows
