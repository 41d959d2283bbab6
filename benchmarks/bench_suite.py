"""What the standard suite costs, per measurement, in units of the model's own passes; and PGD
against an independent implementation (torchattacks) at the same budget.

Run ``.venv/bin/python benchmarks/bench_suite.py [costs|peer|all] [--device cpu|cuda] [--quick]
[--examples N] [--rounds R] [--threads T] [--resnet18]``.

``costs``
  The ``standard`` suite of the model's data set (mnist5k for the bundled reference LeNets,
  ``mnist5k/lenet-standard`` and ``mnist5k/lenet-pgd-at``) on one batch of ``--examples``
  test images (default 250, the default batch), every measurement run as the runner runs it
  (registry order, its own generator, inside the model's trusted-input mode), each timed once
  per round; in the same round, side by side, the model's own forward+backward pass on the batch
  (input gradient of the summed cross-entropy, as the attacks compute it) and its forward pass
  (inference mode). The figure is the median over rounds of the per-round ratio
  ``measurement time / pass time``: how many forward+backward passes of the batch an attack
  costs (PGD, FMN, NSPGD), or how many forward passes of the batch (path widths, clean, ECE).
  For path widths the table adds the cost per image the measurement evaluates, relative to a
  forward pass's cost per image. ``--resnet18`` instead runs a randomly initialised torchvision
  ResNet-18 on the first N CIFAR-10-sized images (seeded noise) with ``standard/cifar10`` (the
  GPU figure of the README: ``--device cuda --resnet18 --examples 1000``).
``peer``
  PGD of the standard MNIST suite (L-inf eps 0.3 and L2 eps 2.0, 40 steps of the suite's step
  size, one random start) on the first ``--examples`` mnist5k test images, invarbench's
  ``pgd_attack`` against torchattacks' ``PGD``/``PGDL2`` with the same budget and steps. Robust
  accuracy of both (invarbench counts an example broken at any iterate, torchattacks at the last;
  the random starts differ, and torchattacks draws its L2 start's radius uniformly, invarbench
  uniformly in the ball), checked to be equal example by example: of the examples only one of the
  two leaves robust, neither may have significantly more (McNemar, ``|b - c| <= 1.96 sqrt(b + c)``),
  so the time ratio is one at equal robust accuracy; and the time ratio torchattacks / invarbench
  (median over interleaved rounds).
  torchattacks is installed with ``--no-deps`` into the benchmark's own folder
  (``bench_apgd.py``'s ``peer()``), never into the project; without network access the section
  says so and is skipped.

Every ratio is measured side by side in one process (``_common.py``); no absolute time is
reported. The exit status is 1 when the two robust accuracies differ significantly.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F
from _common import (  # the local helper module also puts the checkout on sys.path
    device_from,
    interleaved,
    load_inputs,
    load_reference,
    median_ratio,
    sync,
    table,
    trusted,
)
from torch import nn

from invarbench.attacks import PGDConfig, pgd_attack
from invarbench.data.registry import EvalData
from invarbench.measurements import MEASUREMENTS, BatchContext, measurement_generators
from invarbench.suites.schema import load_suite

FORWARD_ONLY = {"clean", "path_width", "ece"}


def _resnet18(device: torch.device) -> nn.Module:
    import torchvision

    from invarbench.models.wrapper import ModelWrapper

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10)
    return ModelWrapper(net, num_classes=10, input_shape=(3, 32, 32)).to(device).eval()


def _data(x: torch.Tensor, y: torch.Tensor, dataset: str) -> EvalData:
    return EvalData(dataset=dataset, split="test", x=x, y=y, total=int(y.shape[0]), source=dataset)


def _fwd_bwd(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    xr = x.clone().requires_grad_(True)
    torch.autograd.grad(F.cross_entropy(model(xr), y, reduction="sum"), xr)


def _fwd(model: nn.Module, x: torch.Tensor) -> None:
    with torch.inference_mode():
        model(x)


def _suite_once(model: nn.Module, data: EvalData, suite, device: torch.device, seed: int) -> tuple[dict, dict]:
    """Every measurement of ``suite`` on the whole of ``data`` as one batch, as the runner runs it:
    (name -> seconds, name -> its output)."""
    names = [m.name for m in MEASUREMENTS.in_order() if m.name == "clean" or m.name in suite.measurements]
    gens = measurement_generators(torch.Generator(device=device).manual_seed(seed), names)
    x, y = data.x, data.y
    with torch.no_grad():
        logits = model(x)
    pred = torch.softmax(logits.double(), dim=1).max(dim=1).indices
    results: dict = {}
    seconds: dict[str, float] = {}
    for name in names:
        m = MEASUREMENTS.get(name)
        ctx = BatchContext(
            model=model,
            data=data,
            start=0,
            stop=len(data),
            x=x,
            y=y,
            logits=logits,
            pred=pred,
            correct=pred == y,
            device=device,
            suite=suite,
            generator=gens[name],
            results=results,
        )
        sync(device)
        t0 = time.perf_counter()
        with trusted(model):
            results[name] = m.measure(ctx, suite.measurements.get(name))
        sync(device)
        seconds[name] = time.perf_counter() - t0
    return seconds, results


def bench_costs(args: argparse.Namespace, device: torch.device) -> list[list[str]]:
    rows = []
    models = ["resnet18"] if args.resnet18 else ["lenet-standard", "lenet-pgd-at"]
    for name in models:
        if name == "resnet18":
            model, suite = _resnet18(device), load_suite("standard", "cifar10")
            gen = torch.Generator().manual_seed(1)
            x = torch.rand((args.examples, 3, 32, 32), generator=gen).to(device)
            y = torch.randint(0, 10, (args.examples,), generator=gen).to(device)
            data = _data(x, y, "cifar10")
        else:
            model, suite = load_reference(name, device), load_suite("standard", "mnist5k")
            x, y = load_inputs(name, args.examples, device)
            data = _data(x, y, "mnist5k")
        ratios: dict[str, list[float]] = {}
        per_image: list[float] = []
        images = 0
        for r in range(args.rounds):
            reps = 5
            sync(device)
            t0 = time.perf_counter()
            with trusted(model):
                for _ in range(reps):
                    _fwd_bwd(model, x, y)
            sync(device)
            fb = (time.perf_counter() - t0) / reps
            t0 = time.perf_counter()
            for _ in range(reps):
                _fwd(model, x)
            sync(device)
            fwd = (time.perf_counter() - t0) / reps
            seconds, results = _suite_once(model, data, suite, device, seed=r)
            for m, s in seconds.items():
                ratios.setdefault(m, []).append(s / (fwd if m in FORWARD_ONLY else fb))
            if "path_width" in results:
                cfg = suite.measurements["path_width"]
                valid = sum(sum(v) for v in results["path_width"].fields["point_valid"])
                images = valid * (cfg.directions * len(cfg.radii) + 1)
                if images:
                    per_image.append(seconds["path_width"] / images / (fwd / len(data)))
        for m, values in ratios.items():
            unit = "forward" if m in FORWARD_ONLY else "forward+backward"
            extra = ""
            if m == "path_width" and per_image:
                extra = f"{images:,} images; {statistics.median(per_image):.2f}x a forward pass per image"
            rows.append([name, m, f"{statistics.median(values):,.1f}", unit, extra])
        print(table(rows[-len(ratios) :], COST_HEADER), flush=True)
    return rows


COST_HEADER = ["model", "measurement", "cost (passes of the batch)", "pass", "note"]


def bench_peer(args: argparse.Namespace, device: torch.device) -> tuple[list[list[str]], bool] | None:
    from bench_apgd import peer

    ta = peer()
    if ta is None:
        return None
    suite = load_suite("standard", "mnist5k")
    rows, ok = [], True
    for name in ("lenet-standard", "lenet-pgd-at"):
        model = load_reference(name, device)
        x, y = load_inputs(name, args.examples, device)
        for key, peer_cls in (("pgd_linf", ta.PGD), ("pgd_l2", ta.PGDL2)):
            s = suite.measurements[key]
            cfg = PGDConfig(norm=s.norm, eps=s.eps, steps=s.steps, step_size=s.step_size, restarts=1)
            atk = peer_cls(model, eps=cfg.eps, alpha=cfg.alpha, steps=cfg.steps, random_start=True)
            out: dict[str, torch.Tensor] = {}

            def ours(cfg=cfg, model=model, x=x, y=y, out=out) -> None:
                out["ours"] = pgd_attack(model, x, y, cfg, generator=torch.Generator(device).manual_seed(0)).robust

            def theirs(atk=atk, model=model, x=x, y=y, out=out) -> None:
                adv = atk(x, y)
                with torch.no_grad():
                    out["theirs"] = model(adv).argmax(1) == y

            with trusted(model):
                times = interleaved({"ours": ours, "theirs": theirs}, repeats=args.rounds, device=device)
            # Equal robust accuracy, example by example (McNemar): the examples only one attack left
            # robust must split evenly up to chance, |b - c| <= 1.96 sqrt(b + c).
            b = int((out["ours"] & ~out["theirs"]).sum())
            c = int((~out["ours"] & out["theirs"]).sum())
            agree = abs(b - c) <= 1.96 * (b + c) ** 0.5
            ok &= agree
            pct = lambda t: f"{100 * float(t.float().mean()):.1f}%"  # noqa: E731
            rows.append(
                [
                    name,
                    f"{s.norm} {s.eps:g}, {s.steps} steps",
                    f"{pct(out['ours'])} / {pct(out['theirs'])}",
                    f"{'yes' if agree else 'NO'} ({b} / {c})",
                    f"{median_ratio(times['theirs'], times['ours']):.2f}x",
                ]
            )
            print(table(rows[-1:], PEER_HEADER), flush=True)
    print(f"\ninvarbench pgd_attack vs torchattacks {ta.__version__} PGD/PGDL2, {args.examples} images per model")
    print(table(rows, PEER_HEADER))
    return rows, ok


PEER_HEADER = ["model", "PGD", "robust accuracy ours / peer", "equal (only ours / only peer)", "time peer / ours"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("section", nargs="?", default="all", choices=["costs", "peer", "all"])
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--quick", action="store_true", help="100 examples, 2 rounds (a smoke run)")
    ap.add_argument("--examples", type=int, default=None, help="examples per model (default 250; --quick 100)")
    ap.add_argument("--rounds", type=int, default=None, help="timing rounds (default 3; --quick 2)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads on the CPU (default 1)")
    ap.add_argument("--resnet18", action="store_true", help="costs: a random ResNet-18, standard/cifar10")
    args = ap.parse_args(argv)
    args.examples = args.examples or (100 if args.quick else 250)
    args.rounds = args.rounds or (2 if args.quick else 3)
    device = device_from(args.device)
    if device.type == "cpu":
        torch.set_num_threads(args.threads)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} thread(s)"
    print(f"torch {torch.__version__}, {where}; {args.examples} examples, {args.rounds} rounds\n", flush=True)
    ok = True
    if args.section in ("costs", "all"):
        rows = bench_costs(args, device)
        print("\nThe standard suite per measurement, in passes of the model on the batch:")
        print(table(rows, COST_HEADER))
    if args.section in ("peer", "all"):
        peer_out = bench_peer(args, device)
        if peer_out is not None:
            ok &= peer_out[1]
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
