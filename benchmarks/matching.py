"""Flow matching on N(0, I) -> the 8-Gaussian ring: flowtutor against torchcfm, in one process.

    pip install -c constraints.txt -e ".[bench]"     # torchcfm is a benchmark-only extra
    python benchmarks/matching.py [--device cpu|cuda] [--steps 3000] [--batch 256] [--repeats 3]

Both sides train the same network (VelocityMLP, 3 x 128, same initial weights), on the same data
stream, with the same optimizer settings (Adam 3e-3, cosine decay) and the linear path (torchcfm's
sigma = 0), for each coupling: independent, exact minibatch OT, Sinkhorn. flowtutor trains with
`fit_matching` (input checks on the first batch, a NaN guard on every step, PyTorch's fused Adam
kernel); torchcfm with the plain loop of its examples (PyTorch's default Adam). Each row is timed
`--repeats` times, the rows in alternating order, and the median is printed with the ratio
torchcfm / flowtutor (above 1: flowtutor is faster). Then the W2 ratio (metrics.w2_ratio: W2(generated,
test) over W2(test', test), each averaged over 10 blocks of 1000 points, with its standard error) after
dopri5 sampling, and after 1, 2, 4, 8, 16, 32 Euler steps.

Differences in the couplings, by design of each library: flowtutor's "ot" is the permutation
solving the assignment (ot.emd); torchcfm's samples pairs *with replacement* from the plan (numpy,
on the CPU). Sinkhorn: flowtutor uses reg 0.05 times the mean cost and draws one partner per x0,
with its default marginal tolerance 1e-7, with the faster option tol=1e-4, and with
cost_scale="max", which divides the cost by its maximum as torchcfm's OTPlanSampler("sinkhorn",
reg=0.05, normalize_cost=True) does (the same, much blurrier plan: the equal-accuracy comparison);
torchcfm samples pairs from the whole plan, flowtutor one partner per x0.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import flowtutor as ft
from flowtutor import ODEFlow, data, metrics
from flowtutor.matching import fit_matching
from flowtutor.nets import VelocityMLP
from report import save_table  # benchmarks/report.py: prints the table and saves it in results/

EULER_STEPS = (1, 2, 4, 8, 16, 32)
BLOCKS = 10  # independent 1000-point draws averaged by the W2 ratio


def train_torchcfm(model: torch.nn.Module, sample_pairs, coupling: str, n_steps: int, batch: int, lr: float) -> None:
    """The training loop of torchcfm's examples: no input checks, no NaN guard, PyTorch's default Adam."""
    from torchcfm.conditional_flow_matching import ConditionalFlowMatcher, ExactOptimalTransportConditionalFlowMatcher
    from torchcfm.optimal_transport import OTPlanSampler

    matcher = ExactOptimalTransportConditionalFlowMatcher(sigma=0.0) if coupling == "ot" else ConditionalFlowMatcher(sigma=0.0)
    sinkhorn = OTPlanSampler("sinkhorn", reg=0.05, normalize_cost=True) if coupling == "sinkhorn" else None
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, n_steps)
    for _ in range(n_steps):
        optimizer.zero_grad()
        x0, x1 = sample_pairs((batch,))
        if sinkhorn is not None:
            x0, x1 = sinkhorn.sample_plan(x0, x1)
        t, xt, ut = matcher.sample_location_and_conditional_flow(x0, x1)
        loss = ((model(t, xt) - ut) ** 2).sum(1).mean()  # the same loss as flowtutor's (sum over d)
        loss.backward()
        optimizer.step()
        scheduler.step()


def evaluate(model: torch.nn.Module, z: torch.Tensor, test: torch.Tensor, reference: torch.Tensor
             ) -> tuple[metrics.Estimate, list[metrics.Estimate]]:
    """W2 ratios after dopri5 and after each number of Euler steps; ``reference`` holds the blocks'
    W2(test', test), shared by every row."""
    def ratio(flow: ODEFlow) -> metrics.Estimate:
        return metrics.ratio_estimate(metrics.w2_blocks(flow.push(z), test, 1000), reference)

    with torch.no_grad():
        return ratio(ODEFlow(model)), [ratio(ODEFlow(model, method="euler", n_steps=k)) for k in EULER_STEPS]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default=str(ft.default_device()))
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per row, in alternating order")
    args = parser.parse_args()
    device = torch.device(args.device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    ring = data.eight_gaussians(device=device, generator=torch.Generator(device=device).manual_seed(0))
    base = torch.distributions.MultivariateNormal(torch.zeros(2, device=device), torch.eye(2, device=device))
    z, test, test2 = (d.sample((BLOCKS * 1000,)) for d in (base, ring, ring))
    reference = metrics.w2_blocks(test2, test, 1000)
    rows = []
    pairs = lambda n: (base.sample(n), ring.sample(n))  # noqa: E731
    for _ in range(2):  # warm-up (CUDA context, kernels, allocator), not timed
        train_torchcfm(VelocityMLP(2, hidden=128, n_layers=3).to(device), pairs, "independent", 20, args.batch, args.lr)
        fit_matching(VelocityMLP(2, hidden=128, n_layers=3).to(device), pairs, 20, batch=args.batch, progress=False)
    # (row label, coupling, flowtutor's coupling options or None for torchcfm)
    runs = [("independent", "independent", {}), ("independent", "independent", None),
            ("minibatch OT", "ot", {}), ("minibatch OT", "ot", None),
            ("Sinkhorn", "sinkhorn", {}), ("Sinkhorn, tol 1e-4", "sinkhorn", {"tol": 1e-4}),
            ("Sinkhorn, cost / max", "sinkhorn", {"cost_scale": "max"}),
            ("Sinkhorn", "sinkhorn", None)]
    times: dict[int, list[float]] = {k: [] for k in range(len(runs))}
    models: dict[int, torch.nn.Module] = {}
    for repeat in range(args.repeats):
        order = range(len(runs)) if repeat % 2 == 0 else reversed(range(len(runs)))  # alternate the order
        for k in order:
            _, coupling, options = runs[k]
            ft.seed_everything(0)
            model = VelocityMLP(2, hidden=128, n_layers=3).to(device)  # the same initial weights for every run
            ft.seed_everything(1)  # and the same data stream
            sync()
            start = time.perf_counter()
            if options is None:
                train_torchcfm(model, pairs, coupling, args.steps, args.batch, args.lr)
            else:
                fit_matching(model, pairs, args.steps, coupling=coupling, batch=args.batch, lr=args.lr,
                             progress=False, coupling_options=options)
            sync()
            times[k].append((time.perf_counter() - start) / args.steps * 1e3)
            models[k] = model
    torchcfm_time = {runs[k][1]: statistics.median(times[k]) for k in times if runs[k][2] is None}
    for k, (label, coupling, options) in enumerate(runs):
        per_step = statistics.median(times[k])
        adaptive, euler = evaluate(models[k], z, test, reference)
        ratio = "" if options is None else f"{torchcfm_time[coupling] / per_step:.2f}"
        rows.append((label, "torchcfm" if options is None else "flowtutor", f"{per_step:.2f}", ratio,
                     f"{adaptive:.2f}", *(f"{w:.2f}" for w in euler)))
    save_table("matching", device, f"flow matching against torchcfm, {args.steps} steps of batch {args.batch}, median "
               f"of {args.repeats} runs per row; W2 ratio = mean W2(generated, test) / mean W2(test', test) over "
               f"{BLOCKS} blocks of 1000 points, ± its standard error",
               ("coupling", "library", "ms/step", "torchcfm/this", "W2 dopri5", *(f"Euler {k}" for k in EULER_STEPS)),
               rows)


if __name__ == "__main__":
    main()
