"""CNF on the 8-Gaussian ring: exact vs Hutchinson divergence, trained the same way in one process.

    python benchmarks/cnf.py [--device cpu|cuda] [--steps 1500] [--batch 256]

Prints, per divergence: test NLL - H(p) (nats, with standard error), the W2 ratio
(metrics.w2_ratio: W2(generated, test) over W2(test', test), each averaged over 10 blocks of 1000
points, with its standard error), training time per iteration, and the NFE of
one dopri5 solve (tolerance 1e-5) when sampling or evaluating the likelihood (the solve is batched,
so this is the number of field evaluations each sample sees).
"""

from __future__ import annotations

import argparse
import math
import time

import torch

import flowtutor as ft
from flowtutor import data, metrics
from flowtutor.cnf import CNF, fit_cnf
from report import save_table  # benchmarks/report.py: prints the table and saves it in results/

BLOCKS = 10  # independent 1000-point draws averaged by the W2 ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=str(ft.default_device()))
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    device = torch.device(args.device)
    ring = data.eight_gaussians(device=device, generator=torch.Generator(device=device).manual_seed(0))
    with torch.no_grad():
        entropy = metrics.entropy_mc(ring, 200_000)
    rows = []
    for divergence in ("exact", "hutchinson"):
        ft.seed_everything(0)
        model = CNF(2, scale=3.0).to(device)
        start = time.perf_counter()
        fit_cnf(model, ring.sample, args.steps, batch=args.batch, divergence=divergence, progress=False)
        if device.type == "cuda":
            torch.cuda.synchronize()
        per_iter = (time.perf_counter() - start) / args.steps
        with torch.no_grad():
            test, test2 = ring.sample((BLOCKS * 1000,)), ring.sample((BLOCKS * 1000,))
            flow = model.flow()
            nll = metrics.nll(flow.log_prob(ring.sample((5000,)), model.base))
            nfe_lik = flow.nfe
            generated = flow.push(model.base.sample((BLOCKS * 1000,)))
            nfe_sample = flow.nfe
            ratio = metrics.w2_ratio(generated, test, test2, n=1000)
        gap = nll.value - entropy.value
        rows.append((divergence, f"{gap:.3f} ± {math.hypot(nll.stderr, entropy.stderr):.3f}", f"{ratio:.2f}",
                     f"{per_iter * 1e3:.0f} ms", f"{nfe_sample} / {nfe_lik}"))
    save_table("cnf", device, f"maximum-likelihood CNF on the 8-Gaussian ring, {args.steps} steps of batch {args.batch}, "
               f"H(p) = {entropy}", ("divergence", "NLL - H(p)", "W2 ratio", "time/iter", "NFE sample/likelihood"), rows)


if __name__ == "__main__":
    main()
