"""JKO flow, local flow matching, global flow matching and a CNF on the 8-Gaussian ring, in one process.

    python benchmarks/jko.py [--device cpu|cuda] [--steps 1000] [--batch 256]

The four models have the same width (3 x 64), batch and total number of Adam steps (chapter 3's CNF
budget: 1000 steps of 256); the JKO flow and local flow matching split the steps over their blocks
(gammas 0.5, 0.75, 1, 1.5); local and global flow matching run again at ten times the steps, since a
regression step costs a fraction of a likelihood step. Prints, per method: test NLL - H(p) (nats, with standard error), the W2 ratio
W2(generated, test) / W2(test', test) on 1000 points, the training time, and the number of field
evaluations one sample sees in a dopri5 solve (tolerance 1e-5). See flowtutor.compare for the details.
"""

from __future__ import annotations

import argparse

import torch

import flowtutor as ft
from flowtutor import data, metrics
from flowtutor.compare import compare_flows
from report import save_table  # benchmarks/report.py: prints the table and saves it in results/


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=str(ft.default_device()))
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=256)
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_default_device(device)
    ring = data.eight_gaussians(device=device, generator=torch.Generator(device=device).manual_seed(1))
    with torch.no_grad():
        entropy = metrics.entropy_mc(ring, 200_000)
    rows = compare_flows(ring, args.steps, batch=args.batch, progress=False)
    # a regression step is far cheaper than a likelihood step: the regression methods again at ten times the steps
    rows += compare_flows(ring, 10 * args.steps, methods=("local FM", "global FM"), batch=args.batch, progress=False)
    table = [(r["method"], r["steps"], r["gap"], f"{r['w2_ratio']:.2f}", f"{r['seconds']:.1f} s", r["nfe"]) for r in rows]
    save_table("jko", device, f"8-Gaussian ring, {args.steps} Adam steps of batch {args.batch} per method "
               f"(regression methods also at ten times that), H(p) = {entropy}",
               ("method", "Adam steps", "NLL - H(p)", "W2 ratio", "train time", "sampling NFE"), table)


if __name__ == "__main__":
    main()
