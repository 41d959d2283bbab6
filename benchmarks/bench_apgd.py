"""A check against a peer: invarbench's APGD-CE and APGD-T against torchattacks' ``APGD`` and
``APGDT`` on the same models, images and budgets (docs/measurements.md §1.1).

Run ``.venv/bin/python benchmarks/bench_apgd.py [--n N] [--steps S] [--rounds R] [--device cpu|cuda]
[--no-cifar] [--cycles]``.

torchattacks is never a dependency of invarbench: this script installs it, without its
dependencies, into a folder of its own (``~/.cache/invarbench-bench/peer``, or ``$INVARBENCH_PEER_DIR``)
with ``python -m pip install --no-deps --target <folder> torchattacks`` the first time, and puts that
folder on its own ``sys.path`` only. Without network access (and no earlier install) it says so and
stops with exit status 0.

What it prints, per model (the bundled ``mnist5k/lenet-standard`` and ``mnist5k/lenet-pgd-at`` on
the first N mnist5k test images at the standard MNIST budgets, L-inf 0.3 and L2 2.0; and a randomly
initialised ResNet-20 on the first N real CIFAR-10 test images from ``../shared/external/cifar10``
at L-inf 8/255 and L2 0.5, skipped cleanly when that file is absent; a random network's robust
accuracy means little, the row checks the two implementations on real CIFAR-size inputs):

- clean accuracy; robust accuracy under APGD-CE and under APGD-T (9 targets), for invarbench and
  for torchattacks (``S`` steps, one restart each), and the worst case per example of both
  (AutoAttack's APGD part): the two implementations draw different random starts, so the numbers
  agree up to a few examples, not bit for bit;
- the time ratio torchattacks / invarbench for the same two attacks (both run on every image, as
  torchattacks does; invarbench's early exit is what makes the difference), each figure the median
  over ``R`` interleaved rounds (``_common.py``).

``--cycles`` adds the cycle-detection check on ``lenet-pgd-at``: L-inf PGD with the standard MNIST
settings (eps 0.3, 40 steps of 0.01) and with larger steps (eps 0.3, 40 steps of 0.1), with and
without ``cycle_detection``: identical ``robust`` and ``broken_at`` (asserted), gradient passes and
the time ratio.
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch
from _common import (  # the local helper module also puts the checkout on sys.path
    device_from,
    interleaved,
    load_inputs,
    load_reference,
    median_ratio,
    table,
    trusted,
)

from invarbench.attacks import APGDConfig, PGDConfig, apgd_attack, pgd_attack

CIFAR = Path(__file__).resolve().parent.parent.parent / "shared" / "external" / "cifar10" / "test_first1000.npz"
PEER_DIR = Path(os.environ.get("INVARBENCH_PEER_DIR", Path.home() / ".cache" / "invarbench-bench" / "peer"))


def peer():  # the torchattacks module, or None
    """torchattacks from the benchmark's own folder, installed there with --no-deps when missing."""
    if str(PEER_DIR) not in sys.path:
        sys.path.insert(0, str(PEER_DIR))
    try:
        return importlib.import_module("torchattacks")
    except ImportError:
        pass
    print(f"installing torchattacks (--no-deps) into {PEER_DIR} for this benchmark only ...", flush=True)
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(PEER_DIR), "torchattacks"],
        check=False,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(f"SKIP: torchattacks could not be installed (no network?): {done.stderr.strip()[-300:]}")
        return None
    importlib.invalidate_caches()
    return importlib.import_module("torchattacks")


def cifar_inputs(n: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor] | None:
    if not CIFAR.is_file():
        return None
    with np.load(CIFAR) as f:
        x = torch.from_numpy(f["x"][:n]).permute(0, 3, 1, 2).float().div(255.0)
        y = torch.from_numpy(f["y"][:n]).long()
    return x.to(device), y.to(device)


def robust_of(model, y, adv) -> torch.Tensor:
    with torch.no_grad():
        return model(adv).argmax(1) == y


def compare(tag: str, model, x, y, norm: str, eps: float, steps: int, rounds: int, ta, device) -> list[str]:
    ours: dict[str, torch.Tensor] = {}
    theirs: dict[str, torch.Tensor] = {}

    def ours_ce() -> None:
        ours["ce"] = apgd_attack(
            model, x, y, APGDConfig(norm, eps, steps), generator=torch.Generator(device).manual_seed(0)
        ).robust

    def ours_t() -> None:
        cfg = APGDConfig(norm, eps, steps, loss="dlr_targeted", targets=9)
        ours["t"] = apgd_attack(model, x, y, cfg, generator=torch.Generator(device).manual_seed(1)).robust

    name = "Linf" if norm == "linf" else "L2"
    ce_atk = ta.APGD(model, norm=name, eps=eps, steps=steps, n_restarts=1, seed=0, loss="ce")
    t_atk = ta.APGDT(model, norm=name, eps=eps, steps=steps, n_restarts=1, seed=0, n_classes=10)

    def theirs_ce() -> None:
        theirs["ce"] = robust_of(model, y, ce_atk(x, y))

    def theirs_t() -> None:
        theirs["t"] = robust_of(model, y, t_atk(x, y))

    with trusted(model):
        times = interleaved(
            {"ours_ce": ours_ce, "ours_t": ours_t, "theirs_ce": theirs_ce, "theirs_t": theirs_t},
            repeats=rounds,
            device=device,
            warmup=0,
        )
    with torch.no_grad():
        clean = float((model(x).argmax(1) == y).float().mean())
    pct = lambda t: f"{100 * float(t.float().mean()):.1f}%"  # noqa: E731
    ratio_ce = median_ratio(times["theirs_ce"], times["ours_ce"])
    ratio_t = median_ratio(times["theirs_t"], times["ours_t"])
    return [
        tag,
        f"{norm} {eps:g}",
        f"{100 * clean:.1f}%",
        f"{pct(ours['ce'])} / {pct(theirs['ce'])}",
        f"{pct(ours['t'])} / {pct(theirs['t'])}",
        f"{pct(ours['ce'] & ours['t'])} / {pct(theirs['ce'] & theirs['t'])}",
        f"{ratio_ce:.2f}x / {ratio_t:.2f}x",
    ]


def cycles(device: torch.device, n: int, rounds: int) -> None:
    model = load_reference("lenet-pgd-at", device)
    x, y = load_inputs("lenet-pgd-at", n, device)
    rows = []
    for alpha in (0.01, 0.1):
        out = {}

        def run(detect: bool, alpha: float = alpha) -> None:
            cfg = PGDConfig("linf", 0.3, 40, alpha, cycle_detection=detect)
            out[detect] = pgd_attack(model, x, y, cfg, generator=torch.Generator(device).manual_seed(0))

        with trusted(model):
            times = interleaved({"plain": lambda: run(False), "cycles": lambda: run(True)}, rounds, device)
        a, b = out[False], out[True]
        assert torch.equal(a.robust, b.robust) and torch.equal(a.broken_at, b.broken_at), (
            "cycle detection changed a result"
        )
        rows.append(
            [
                f"eps 0.3, 40 steps of {alpha:g}",
                f"{100 * float(a.robust.float().mean()):.1f}%",
                f"{a.forward_backward_passes} -> {b.forward_backward_passes}",
                f"{median_ratio(times['plain'], times['cycles']):.2f}x",
            ]
        )
    print(f"\nCycle detection, L-inf PGD on lenet-pgd-at, {n} mnist5k images (identical robust and broken_at)")
    print(table(rows, ["settings", "robust accuracy", "gradient passes", "time without / with"]))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=100, help="images per model (default 100)")
    ap.add_argument("--steps", type=int, default=100, help="APGD iterations (default 100, AutoAttack's)")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved timing rounds (default 1)")
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--no-cifar", action="store_true", help="skip the CIFAR-10 ResNet-20 row")
    ap.add_argument("--cycles", action="store_true", help="also the cycle-detection check on lenet-pgd-at")
    args = ap.parse_args(argv)
    device = device_from(args.device)
    torch.manual_seed(0)
    if args.cycles:
        cycles(device, args.n, max(args.rounds, 3))
    ta = peer()
    if ta is None:
        return 0
    rows = []
    for name in ("lenet-standard", "lenet-pgd-at"):
        model = load_reference(name, device)
        x, y = load_inputs(name, args.n, device)
        for norm, eps in (("linf", 0.3), ("l2", 2.0)):
            rows.append(compare(name, model, x, y, norm, eps, args.steps, args.rounds, ta, device))
            print(table([rows[-1]], HEADER), flush=True)
    if args.no_cifar:
        pass
    elif (data := cifar_inputs(args.n, device)) is None:
        print(f"SKIP: no real CIFAR-10 images at {CIFAR}")
    else:
        model = load_reference("resnet20", device)
        x, y = data
        for norm, eps in (("linf", 8 / 255), ("l2", 0.5)):
            rows.append(
                compare("resnet20 (random) on CIFAR-10", model, x, y, norm, eps, args.steps, args.rounds, ta, device)
            )
            print(table([rows[-1]], HEADER), flush=True)
    print(f"\ninvarbench vs torchattacks {ta.__version__}: APGD, {args.steps} steps, 1 restart, APGD-T 9 targets,")
    print(f"the first {args.n} images of each data set")
    print(table(rows, HEADER))
    return 0


HEADER = [
    "model",
    "budget",
    "clean",
    "APGD-CE ours / peer",
    "APGD-T ours / peer",
    "worst case ours / peer",
    "time peer / ours (CE / T)",
]

if __name__ == "__main__":
    raise SystemExit(main())
