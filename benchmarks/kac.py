"""Kac flow matching against diffusion (VP) on six narrow modes, at one budget, in one process.

    python benchmarks/kac.py [--device cpu|cuda] [--steps 4000] [--batch 256] [--seeds 3]

The models of chapter 8 — a Kac flow ((a, c) = (25, 15), Kac times t = u^2), diffusion with chapter 4's
recipe (s ~ U[1e-3, 1]), diffusion with the Kac flow's emphasis on times near the data (s = 1e-3 + u^2) and the
mean-reverting Kac flow — share one network (VelocityMLP 3 x 128), batch, learning rate and number of Adam steps,
on `data.narrow_mode_mixture(std=0.03)`. Per model and seed: the mode-weight error and in-mode share of
`metrics.mode_recovery` (radius 4 std) on 5000 samples, the W2 ratio of `metrics.w2_ratio` on those samples
(5 blocks of 1000 points), the training time and the sampling NFE (dopri5, tolerance 1e-4). Prints the
mean and standard deviation over seeds. A reference: `torch.distributions.Beta`-based exact Kac draws against the
jump-time formula, time per batch at (a, c) = (1600, 10).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import flowtutor as ft
from flowtutor import ODEFlow, data, metrics
from flowtutor import kac as K
from flowtutor.diffusion import VPSDE, fit_score, probability_flow_velocity
from flowtutor.nets import VelocityMLP
from report import save_table  # benchmarks/report.py: prints the table and saves it in results/

A, C = 25.0, 15.0


def run(name: str, steps: int, batch: int, seed: int, device: torch.device) -> dict:
    gen = torch.Generator(device=device).manual_seed(seed)
    target = data.narrow_mode_mixture(std=0.03, device=device, generator=gen)
    ft.seed_everything(seed)
    net = VelocityMLP(2, hidden=128, n_layers=3).to(device)
    sde = VPSDE()
    begin = time.perf_counter()
    if name.startswith("diffusion"):
        fit_score(net, target.sample, sde, steps, batch=batch, time_power=2.0 if "Kac" in name else 1.0,
                  progress=False)
        field, latent, t1 = probability_flow_velocity(net, sde), torch.randn(5000, 2, device=device), 1 - 1e-3
    else:
        K.fit_kac(net, target.sample, steps, A, C, batch=batch, time_power=2.0,
                  mean_reverting=name.startswith("mean"), progress=False)
        field, latent, t1 = net, K.sample_kac(1.0, (5000, 2), A, C, device=device).position, 1.0
    if device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - begin
    with torch.no_grad():
        flow = ODEFlow(field, rtol=1e-4, atol=1e-4)
        x = flow.push(latent, t1=t1)
        rec = metrics.mode_recovery(x, target.component_distribution.loc, target.mixture_distribution.probs, 0.12)
        ratio = metrics.w2_ratio(x, target.sample((5000,)), target.sample((5000,)), n=1000)
    return {"error": rec.weight_error, "in_mode": rec.in_mode, "w2": ratio.value, "seconds": seconds,
            "nfe": flow.nfe}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=str(ft.default_device()))
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    names = ("Kac flow", "diffusion (ch. 4 recipe)", "diffusion, times as Kac", "mean-reverting Kac")
    header = ("model", "weight error", "in a mode", "W2 ratio", "train time", "NFE")
    table = []
    for name in names:
        rows = [run(name, args.steps, args.batch, seed, device) for seed in range(args.seeds)]

        def cell(key: str, fmt: str) -> str:
            values = [r[key] for r in rows]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            return f"{statistics.mean(values):{fmt}} ± {spread:{fmt}}"

        table.append((name, cell("error", ".3f"), cell("in_mode", ".3f"), cell("w2", ".2f"),
                      f"{statistics.mean(r['seconds'] for r in rows):.1f} s", f"{rows[0]['nfe']}"))
    draws = []
    for method in ("jumps", "beta"):
        K.sample_kac(1.0, (256, 2), 1600.0, 10.0, method=method, device=device)
        begin = time.perf_counter()
        for _ in range(10):
            K.sample_kac(1.0, (256, 2), 1600.0, 10.0, method=method, device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        draws.append(f"exact Kac draws, method {method!r}: {100 * (time.perf_counter() - begin):.2f} ms per batch of "
                     "256 x 2 at (a, c) = (1600, 10)")
    save_table("kac", device, f"six narrow modes, {args.steps} Adam steps of batch {args.batch}, "
               f"mean ± sd over {args.seeds} seeds", header, table, tuple(draws))


if __name__ == "__main__":
    main()
