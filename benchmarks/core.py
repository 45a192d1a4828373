"""Speed and accuracy of the package core against the reference libraries, in one process.

    python benchmarks/core.py [--device cpu|cuda] [--repeats 5]

Rows: ODEFlow.push and ODEFlow.log_prob against a direct torchdiffeq.odeint call on the same field;
metrics.w2 against a direct ot.emd2 call; the finite-volume solver's error and time by grid size.
Prints a table; nothing here is asserted (the tests and notebooks hold the checks).
"""

from __future__ import annotations

import argparse
import math
import time

import ot
import torch
from torchdiffeq import odeint

import flowtutor as ft
from flowtutor import ODEFlow, metrics, pde
from flowtutor.nets import VelocityMLP
from report import save_table  # benchmarks/report.py: prints the table and saves it in results/


def timed(fn, repeats: int, device: torch.device) -> tuple[float, object]:
    out = fn()  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / repeats, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=str(ft.default_device()))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    device = torch.device(args.device)
    ft.seed_everything(0)
    rows = []

    net = VelocityMLP(2, hidden=64, n_layers=3).to(device)
    x = torch.randn(4096, 2, device=device)
    with torch.no_grad():
        span = torch.tensor([0.0, 1.0], device=device)
        # the same call ODEFlow makes: steps land on t = 1 (step_t) rather than stepping past it and interpolating
        t_ref, y_ref = timed(lambda: odeint(net, x, span, rtol=1e-5, atol=1e-5, options={"step_t": span[1:]})[-1],
                             args.repeats, device)
        flow = ODEFlow(net, rtol=1e-5, atol=1e-5)
        t_ft, y_ft = timed(lambda: flow.push(x), args.repeats, device)
    rows.append(("push 4096 pts, MLP, dopri5", f"{t_ft * 1e3:.1f} ms", f"{t_ref * 1e3:.1f} ms (odeint)",
                 f"max diff {(y_ft - y_ref).abs().max().item():.1e}, nfe {flow.nfe}"))
    base = torch.distributions.MultivariateNormal(torch.zeros(2, device=device), torch.eye(2, device=device))
    xs = x[:1024]
    with torch.no_grad():
        for div in ("exact", "hutchinson"):
            t_lp, _ = timed(lambda: flow.log_prob(xs, base, divergence=div), args.repeats, device)
            rows.append((f"log_prob 1024 pts, {div}", f"{t_lp * 1e3:.1f} ms", "-", f"nfe {flow.nfe}"))

    for n in (500, 2000):
        a, b = torch.randn(n, 2, device=device, dtype=torch.float64), torch.randn(n, 2, device=device, dtype=torch.float64) + 1
        w = torch.full((n,), 1.0 / n, device=device, dtype=torch.float64)
        t_ref, ref = timed(lambda: ot.emd2(w, w, ot.dist(a, b), numItermax=10_000_000), args.repeats, device)
        t_ft, ours = timed(lambda: metrics.w2(a, b), args.repeats, device)
        rows.append((f"w2 exact, n={n}", f"{t_ft * 1e3:.1f} ms", f"{t_ref * 1e3:.1f} ms (ot.emd2)",
                     f"|diff| {abs(ours.item() ** 2 - float(ref)):.1e}"))

    for n in (64, 128, 256):
        g = pde.Grid2D.square(-4.0, 4.0, n, device=device)
        rho0 = torch.exp(-0.5 * ((g.points - torch.tensor([1.0, 0.0], device=device, dtype=torch.float64)) ** 2).sum(1) / 0.3)
        rho0 = (rho0 / (2 * math.pi * 0.3)).reshape(n, n)
        rot = torch.tensor([[0.0, -1.0], [1.0, 0.0]], device=device, dtype=torch.float64)
        t_pde, out = timed(lambda: pde.continuity_2d(rho0, g, lambda t, y: y @ rot.T, [0.0, math.pi / 2])[-1], 1, device)
        exact = torch.exp(-0.5 * ((g.points - torch.tensor([0.0, 1.0], device=device, dtype=torch.float64)) ** 2).sum(1) / 0.3)
        err = ((out.reshape(-1) - exact / (2 * math.pi * 0.3)).abs().sum() * g.cell).item()
        rows.append((f"continuity_2d rotation, {n}^2", f"{t_pde * 1e3:.0f} ms", "-", f"L1 error {err:.2e}"))

    save_table("core", device,
               f"the package's wrappers against the libraries they call, mean of {args.repeats} runs after a warm-up",
               ("task", "flowtutor", "reference", "accuracy"), rows)


if __name__ == "__main__":
    main()
