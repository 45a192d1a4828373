"""Flow matching on N(0, I) -> the 8-Gaussian ring: flowtutor against torchcfm, in one process.

    pip install -c constraints.txt -e ".[bench]"     # torchcfm is a benchmark-only extra
    python benchmarks/matching.py [--device cpu|cuda] [--steps 3000] [--batch 256]

Both sides train the same network (VelocityMLP, 3 x 128, same initial weights), on the same data
stream, with the same optimizer (Adam 3e-3, cosine decay) and the linear path (torchcfm's sigma = 0),
for each coupling: independent, exact minibatch OT, Sinkhorn. Prints the time per training step
(and the ratio torchcfm / flowtutor), the W2 ratio W2(generated, test) / W2(test, test') on 1000
points after dopri5 sampling, and the W2 ratio after 1, 2, 4, 8, 16, 32 Euler steps.

Differences in the couplings, by design of each library: flowtutor's "ot" is the permutation
solving the assignment (ot.emd, on the inputs' device); torchcfm's samples pairs *with replacement*
from the plan (numpy, on the CPU). Sinkhorn: flowtutor uses reg 0.05 times the mean cost and draws
one partner per x0; torchcfm's OTPlanSampler("sinkhorn", reg=0.05, normalize_cost=True) divides
the cost by its maximum and samples pairs from the whole plan.
"""

from __future__ import annotations

import argparse
import copy
import time

import torch

import flowtutor as ft
from flowtutor import ODEFlow, data, metrics
from flowtutor.matching import fit_matching
from flowtutor.nets import VelocityMLP
from flowtutor.training import fit

EULER_STEPS = (1, 2, 4, 8, 16, 32)


def train_torchcfm(model: torch.nn.Module, sample_pairs, coupling: str, n_steps: int, batch: int, lr: float) -> None:
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher, ExactOptimalTransportConditionalFlowMatcher
    from torchcfm.optimal_transport import OTPlanSampler

    matcher = ExactOptimalTransportConditionalFlowMatcher(sigma=0.0) if coupling == "ot" else ConditionalFlowMatcher(sigma=0.0)
    sinkhorn = OTPlanSampler("sinkhorn", reg=0.05, normalize_cost=True) if coupling == "sinkhorn" else None
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_steps)

    def loss(step: int) -> torch.Tensor:
        x0, x1 = sample_pairs((batch,))
        if sinkhorn is not None:
            x0, x1 = sinkhorn.sample_plan(x0, x1)
        t, xt, ut = matcher.sample_location_and_conditional_flow(x0, x1)
        return ((model(t, xt) - ut) ** 2).sum(1).mean()  # the same loss as flowtutor's (sum over d)

    fit(loss, optimizer, n_steps, scheduler=scheduler, progress=False)


def evaluate(model: torch.nn.Module, z: torch.Tensor, test: torch.Tensor, w2_ref: float) -> tuple[float, list[float]]:
    with torch.no_grad():
        adaptive = metrics.w2(ODEFlow(model).push(z), test).item() / w2_ref
        euler = [metrics.w2(ODEFlow(model, method="euler", n_steps=k).push(z), test).item() / w2_ref for k in EULER_STEPS]
    return adaptive, euler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=str(ft.default_device()))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-3)
    args = parser.parse_args()
    device = torch.device(args.device)
    ring = data.eight_gaussians(device=device, generator=torch.Generator(device=device).manual_seed(0))
    base = torch.distributions.MultivariateNormal(torch.zeros(2, device=device), torch.eye(2, device=device))
    z, test, test2 = base.sample((1000,)), ring.sample((1000,)), ring.sample((1000,))
    w2_ref = metrics.w2(test, test2).item()
    rows = []
    for library_fit in (fit_matching, None):  # warm-up (CUDA context, kernels, allocator), not timed
        warm = VelocityMLP(2, hidden=128, n_layers=3).to(device)
        if library_fit is None:
            train_torchcfm(warm, lambda n: (base.sample(n), ring.sample(n)), "independent", 20, args.batch, args.lr)
        else:
            fit_matching(warm, lambda n: (base.sample(n), ring.sample(n)), 20, batch=args.batch, progress=False)
    for coupling in ("independent", "ot", "sinkhorn"):
        ft.seed_everything(0)
        initial = VelocityMLP(2, hidden=128, n_layers=3).to(device)
        result = {}
        for library in ("flowtutor", "torchcfm"):
            model = copy.deepcopy(initial)
            ft.seed_everything(1)  # the same data stream for both
            sample_pairs = lambda n: (base.sample(n), ring.sample(n))  # noqa: E731
            if device.type == "cuda":
                torch.cuda.synchronize()
            start = time.perf_counter()
            if library == "flowtutor":
                fit_matching(model, sample_pairs, args.steps, coupling=coupling, batch=args.batch, lr=args.lr, progress=False)
            else:
                train_torchcfm(model, sample_pairs, coupling, args.steps, args.batch, args.lr)
            if device.type == "cuda":
                torch.cuda.synchronize()
            per_step = (time.perf_counter() - start) / args.steps * 1e3
            adaptive, euler = evaluate(model, z, test, w2_ref)
            result[library] = per_step
            rows.append((coupling, library, f"{per_step:.2f}", f"{adaptive:.2f}", *(f"{w:.2f}" for w in euler)))
        rows.append((coupling, "ratio", f"{result['torchcfm'] / result['flowtutor']:.2f}", "", *([""] * len(EULER_STEPS))))
    print(f"device {device}, {args.steps} steps of batch {args.batch}; W2 ratio = W2(generated, test) / W2(test, test'), n = 1000")
    header = ("coupling", "library", "ms/step", "W2 dopri5", *(f"Euler {k}" for k in EULER_STEPS))
    widths = [max(len(str(r[i])) for r in rows + [header]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths)))


if __name__ == "__main__":
    main()
