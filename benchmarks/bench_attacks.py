"""Speed and memory benchmarks of the attacks (the protocols are in docs/measurements.md).

Run ``.venv/bin/python benchmarks/bench_attacks.py [pgd|nspgd|pathwidth|memory|all]
[--device cpu|cuda] [--quick] [--resnet]``. Every speed figure is a ratio of two variants timed
side by side in this process (interleaved, order rotating every round, median over rounds of
the per-round ratios; see ``_common.py``), so the load of a shared machine cancels out.
The models are the bundled reference LeNets (``mnist5k/lenet-standard`` and
``mnist5k/lenet-pgd-at``) on batches of 250 mnist5k test images; ``--resnet`` adds a randomly
initialised ResNet-20 on 3x32x32 noise (CIFAR-size compute, informational).

What is measured, and the targets (PASS/FAIL is printed for each):

``pgd``
  1. Cost per example-step: ``pgd_attack(early_exit=False)`` (L-inf, eps 0.3, 40 steps of 0.01:
     the standard MNIST suite) on a batch, against the same number of plain forward+backward
     passes (input gradient of the summed cross-entropy) on the same batch. Target: <= 1.05.
  2. Early exit: fixed-step PGD time / early-exit PGD time on lenet-standard. Target: >= 3, with
     exactly the same ``robust`` and ``broken_at`` (asserted; the script stops if they differ).
``nspgd``
  3. Cost per active pair-step: ``nspgd`` (eta 0.05, delta 0.05, K = 100) against a replay of
     plain forward+backward passes of ``p_c`` on exactly the batch sizes whose gradient the attack
     computed (their sum is ``result.forward_backward_passes``). Target: <= 1.1. The table also
     shows passes per accepted step (the rows of refused pairs whose gradient was wasted).
  4. Against a straightforward NSPGD written here from docs/measurements.md §2 (a separate forward
     pass checks every proposal): naive time / nspgd time. Target: >= 1.3, with the same
     results (accepted steps, closure, final iterates: asserted up to float tolerance).
``pathwidth``
  5. Throughput of ``path_widths`` (256 directions x 6 radii per point, budget 4096 images)
     against plain batched inference (``model(x)`` in inference mode, batches of the same
     budget) over the same number of images. Target: >= 0.9.
``memory``
  6. Peak memory, each figure from a fresh subprocess (CPU: the process's peak resident set
     size after the run minus that after loading and a warm-up, from ``VmHWM`` in
     ``/proc/self/status`` where it exists, else ``ru_maxrss``, which Linux carries over from the
     parent across fork and exec, so a big parent would hide the child's peak; CUDA:
     ``torch.cuda.max_memory_allocated`` minus the memory allocated before the run). For a
     budget of B images: ``path_widths`` with ``max_batch_images = B`` over a fixed workload of
     many more images, against plain inference on one batch of B images; and 5 steps of PGD on a
     batch of B examples, against 5 plain forward+backward passes on that batch (a loop of
     passes, like the attack's: the CPU allocator's reuse of freed memory makes one pass and a
     loop of them differ). Target: each at most 1.25x its reference at every B (the extra memory
     of the measurement is bounded by the budget, not by the workload), and growing with B.
"""

from __future__ import annotations

import argparse
import importlib
import json
import subprocess
import sys

import torch
import torch.nn.functional as F
from _common import (  # the local helper module also puts the checkout on sys.path
    device_from,
    interleaved,
    load_inputs,
    load_reference,
    median_ratio,
    table,
    trusted,
    verdict,
)
from torch import nn

from invarbench.attacks import NSPGDConfig, PathWidthConfig, PGDConfig, nspgd, path_widths, pgd_attack
from invarbench.store.probes import peak_rss_bytes

nspgd_module = importlib.import_module("invarbench.attacks.nspgd")  # the module (the package exports the function)

BATCH = 250
MNIST_RADII = (2.5, 5.0, 7.5, 10.0, 12.5, 15.0)  # the standard MNIST suite's radii
RESULTS: list[tuple[str, bool]] = []


def record(name: str, ok: bool) -> str:
    RESULTS.append((name, ok))
    return verdict(ok)


# --- shared pieces -----------------------------------------------------------------------------
def fwd_bwd_ce(model: nn.Module, x: torch.Tensor, y: torch.Tensor, times: int) -> None:
    """``times`` plain forward+backward passes: the input gradient of the summed cross-entropy."""
    for _ in range(times):
        xr = x.detach().requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(xr), y, reduction="sum")
            torch.autograd.grad(loss, xr)


def replay_ce(model: nn.Module, inputs: list[torch.Tensor], y: torch.Tensor) -> None:
    """One plain forward+backward pass (summed cross-entropy) on each recorded input batch."""
    for xi in inputs:
        xr = xi.requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(xr), y[: xr.shape[0]], reduction="sum")
            torch.autograd.grad(loss, xr)


def p_source(model: nn.Module, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    return torch.softmax(model(x), dim=1).gather(1, c[:, None]).squeeze(1)


def replay_pc(model: nn.Module, inputs: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
    """One plain forward+backward pass of ``p_c`` (NSPGD's gradient) on each recorded (input, classes)."""
    for xi, c in inputs:
        xr = xi.requires_grad_(True)
        with torch.enable_grad():
            torch.autograd.grad(p_source(model, xr, c).sum(), xr)


class Recorder(nn.Module):
    """Passes through to ``model`` and keeps a copy of every input batch that builds a graph: the
    baselines replay plain forward+backward passes on exactly the images the attack differentiated
    (the model's cost depends a little on the data: max-pooling and ReLU branch on it)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.graph_inputs: list[torch.Tensor] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            self.graph_inputs.append(x.detach().clone())
        return self.model(x)


# --- PGD -------------------------------------------------------------------------------------
def correct_batch(name: str, model: nn.Module, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """``BATCH`` correctly classified images (every example is attacked for all its steps).
    ResNet-20 is untrained: its labels are its own predictions."""
    x, y = load_inputs(name, 2 * BATCH, device)
    with torch.no_grad(), trusted(model):
        pred = model(x).argmax(1)
    if name == "resnet20":
        return x[:BATCH], pred[:BATCH]
    ok = torch.nonzero(pred == y).squeeze(1)[:BATCH]
    return x[ok], y[ok]


def bench_pgd(models: list[str], device: torch.device, quick: bool) -> None:
    steps, alpha = (10, 0.04) if quick else (40, 0.01)
    repeats = 3 if quick else 7
    rows_cost, rows_exit = [], []
    for name in models:
        model = load_reference(name, device)
        x, y = correct_batch(name, model, device)
        eps = 0.3 if name != "resnet20" else 8 / 255
        step = alpha if name != "resnet20" else 2 / 255
        fixed = PGDConfig(norm="linf", eps=eps, steps=steps, step_size=step, early_exit=False)
        early = PGDConfig(norm="linf", eps=eps, steps=steps, step_size=step, early_exit=True)
        out: dict[str, object] = {}

        def run(cfg: PGDConfig, key: str) -> None:
            out[key] = pgd_attack(model, x, y, cfg, generator=torch.Generator(device=device).manual_seed(0))

        with trusted(model):
            rec = Recorder(model)
            pgd_attack(rec, x, y, fixed, generator=torch.Generator(device=device).manual_seed(0))
            inputs = rec.graph_inputs  # the iterates whose gradient the attack took
            assert sum(int(i.shape[0]) for i in inputs) == BATCH * steps
            times = interleaved(
                {
                    "fixed": lambda: run(fixed, "fixed"),
                    "early": lambda: run(early, "early"),
                    "fb": lambda: replay_ce(model, inputs, y),
                },
                repeats,
                device,
            )
        rf, re = out["fixed"], out["early"]
        assert rf.forward_backward_passes == BATCH * steps
        same = bool(torch.equal(rf.robust, re.robust) and torch.equal(rf.broken_at, re.broken_at))
        if not same:
            raise SystemExit(f"{name}: early exit changed the PGD results; this is a bug")
        cost = median_ratio(times["fixed"], times["fb"], rf.forward_backward_passes, BATCH * steps)
        speedup = median_ratio(times["fixed"], times["early"])
        rows_cost.append(
            [name, f"{BATCH} x {steps}", f"{cost:.3f}", record(f"pgd cost/example-step {name}", cost <= 1.05)]
        )
        acc = float(rf.robust.float().mean())
        target = name == "lenet-standard"
        rows_exit.append(
            [
                name,
                f"{acc:.3f}",
                f"{float(re.robust.float().mean()):.3f}",
                "yes" if same else "NO",
                f"{re.forward_backward_passes}/{rf.forward_backward_passes}",
                f"{speedup:.2f}",
                record(f"pgd early exit {name}", speedup >= 3.0) if target else "(info)",
            ]
        )
    print(f"\nPGD L-inf, {steps} steps, batch {BATCH}, {repeats} interleaved rounds (median of per-round ratios)")
    print("\n1. time per example-step / one forward+backward per example (target <= 1.05)")
    print(table(rows_cost, ["model", "batch x steps", "ratio", "result"]))
    print("\n2. early exit: fixed-step time / early-exit time (target >= 3 on lenet-standard, same results)")
    print(
        table(
            rows_exit,
            [
                "model",
                "robust acc fixed",
                "robust acc early",
                "same robust+broken_at",
                "passes early/fixed",
                "speed-up",
                "result",
            ],
        )
    )


# --- NSPGD ------------------------------------------------------------------------------------
def pairs_for(name: str, model: nn.Module, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Correctly classified sources among the first ``BATCH`` images, each with the next image of another class."""
    x, y = load_inputs(name, 2 * BATCH, device)
    with torch.no_grad(), trusted(model):
        ok = model(x[:BATCH]).argmax(1) == y[:BATCH]
    src = torch.nonzero(ok).squeeze(1)
    tgt = torch.empty_like(src)
    for k, i in enumerate(src.tolist()):
        j = i + 1
        while int(y[j]) == int(y[i]):
            j += 1
        tgt[k] = j
    return x[src], y[src], x[tgt]


def record_nspgd_inputs(
    model: nn.Module, x0: torch.Tensor, c: torch.Tensor, t: torch.Tensor, cfg: NSPGDConfig
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Run ``nspgd`` once and return copies of the (iterates, source classes) it differentiated."""
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    original = nspgd_module._source_confidence

    def spy(m: nn.Module, x: torch.Tensor, classes: torch.Tensor):
        if torch.is_grad_enabled() and x.requires_grad:
            seen.append((x.detach().clone(), classes.clone()))
        return original(m, x, classes)

    nspgd_module._source_confidence = spy
    try:
        res = nspgd(model, x0, c, t, cfg)
    finally:
        nspgd_module._source_confidence = original
    while sum(int(xi.shape[0]) for xi, _ in seen) > res.forward_backward_passes:
        seen.pop()  # a last graph whose backward never ran
    assert sum(int(xi.shape[0]) for xi, _ in seen) == res.forward_backward_passes
    return seen


def naive_nspgd(model: nn.Module, x0: torch.Tensor, c: torch.Tensor, t: torch.Tensor, cfg: NSPGDConfig) -> dict:
    """NSPGD exactly as docs/measurements.md §2 writes it: each iteration takes the gradient at x
    (forward + backward) and then checks the proposal x' with a *separate* forward pass.
    Finished (refused) pairs leave the batch, as in the library."""
    n = x0.shape[0]
    with torch.no_grad():
        p_start = p_source(model, x0, c)
    x = x0.clone()
    accepted = torch.zeros(n, dtype=torch.long, device=x0.device)
    active = torch.arange(n, device=x0.device)
    for _ in range(cfg.max_iter):
        if active.numel() == 0:
            break
        xa = x[active].requires_grad_(True)
        with torch.enable_grad():
            (g,) = torch.autograd.grad(p_source(model, xa, c[active]).sum(), xa)
        xa = xa.detach()
        g = torch.nan_to_num(g, nan=0.0, posinf=0.0, neginf=0.0)
        v = t[active] - xa
        gv = (g * v).flatten(1).sum(1)
        gg = (g * g).flatten(1).sum(1)
        coef = torch.where(gv < 0, gv / gg.clamp_min(1e-30), torch.zeros_like(gv))
        v = v - g * coef.view(-1, *([1] * (g.dim() - 1)))
        x_new = (xa + cfg.eta * v).clamp(0.0, 1.0)
        with torch.no_grad():
            ok = (p_start[active] - p_source(model, x_new, c[active])) < cfg.delta
        x[active[ok]] = x_new[ok]
        accepted[active[ok]] += 1
        active = active[ok]
    remaining = (x - t).flatten(1).norm(dim=1)
    closure = 1 - remaining / (x0 - t).flatten(1).norm(dim=1)
    return {"x_final": x, "accepted_steps": accepted, "closure": closure}


def bench_nspgd(models: list[str], device: torch.device, quick: bool) -> None:
    cfg = NSPGDConfig(eta=0.05, delta=0.05, max_iter=50 if quick else 100)
    repeats = 3 if quick else 7
    rows_cost, rows_naive = [], []
    for name in models:
        model = load_reference(name, device)
        x0, c, t = pairs_for(name, model, device)
        with trusted(model):
            inputs = record_nspgd_inputs(model, x0, c, t, cfg)
            out: dict[str, object] = {}
            times = interleaved(
                {
                    "nspgd": lambda: out.__setitem__("lib", nspgd(model, x0, c, t, cfg)),
                    "replay": lambda: replay_pc(model, inputs),
                    "naive": lambda: out.__setitem__("naive", naive_nspgd(model, x0, c, t, cfg)),
                },
                repeats,
                device,
            )
        lib, ref = out["lib"], out["naive"]
        same_steps = int((lib.accepted_steps == ref["accepted_steps"]).sum())
        max_dc = float((lib.closure - ref["closure"]).abs().max())
        max_dx = float((lib.x_final - ref["x_final"]).abs().max())
        agree = same_steps == len(c) and max_dc < 1e-4 and max_dx < 1e-3
        if not agree:
            raise SystemExit(
                f"{name}: the naive NSPGD disagrees with the library ({same_steps}/{len(c)} equal "
                f"accepted steps, max |closure diff| {max_dc:.2e}); this is a bug"
            )
        acc_steps = int(lib.accepted_steps.sum())
        cost = median_ratio(times["nspgd"], times["replay"])
        speed = median_ratio(times["naive"], times["nspgd"])
        rows_cost.append(
            [
                name,
                str(len(c)),
                f"{float(lib.closure.mean()):.3f}",
                str(acc_steps),
                str(lib.forward_backward_passes),
                f"{lib.forward_backward_passes / max(acc_steps, 1):.3f}",
                f"{cost:.3f}",
                record(f"nspgd cost/pair-step {name}", cost <= 1.1),
            ]
        )
        rows_naive.append(
            [
                name,
                f"{same_steps}/{len(c)}",
                f"{max_dc:.1e}",
                f"{max_dx:.1e}",
                f"{speed:.2f}",
                record(f"nspgd vs naive {name}", speed >= 1.3),
            ]
        )
    print(f"\nNSPGD eta {cfg.eta}, delta {cfg.delta}, K {cfg.max_iter}, {repeats} interleaved rounds")
    print("\n3. nspgd time / replayed forward+backward passes of p_c on the same batch sizes (target <= 1.1)")
    print(
        table(
            rows_cost,
            [
                "model",
                "pairs",
                "mean closure",
                "accepted steps",
                "fwd+bwd passes",
                "passes/accepted",
                "ratio",
                "result",
            ],
        )
    )
    print("\n4. straightforward NSPGD (separate check forward) time / nspgd time (target >= 1.3, same results)")
    print(
        table(rows_naive, ["model", "equal accepted steps", "max |d closure|", "max |d x_final|", "speed-up", "result"])
    )


# --- path widths -----------------------------------------------------------------------------
def bench_pathwidth(models: list[str], device: torch.device, quick: bool) -> None:
    repeats = 3 if quick else 7
    m = 8 if quick else 20
    rows = []
    for name in models:
        model = load_reference(name, device)
        x, y = load_inputs(name, m, device)
        dirs = torch.randn(x.shape, generator=torch.Generator().manual_seed(2)).to(device)
        radii = MNIST_RADII if name != "resnet20" else (5.0, 10.0, 15.0, 20.0, 25.0, 30.0)
        directions = 256 if name != "resnet20" else 64
        cfg = PathWidthConfig(directions=directions, radii=radii, max_batch_images=4096)
        total = m * directions * len(radii)
        # The same number of images, already in memory, for plain batched inference.
        imgs = x.repeat_interleave(directions * len(radii), dim=0)
        imgs = imgs.add_(torch.rand(imgs.shape, generator=torch.Generator().manual_seed(3)).to(device), alpha=0.1)
        imgs = imgs.clamp_(0, 1)

        def plain() -> None:
            with torch.inference_mode():
                for s in range(0, total, cfg.max_batch_images):
                    model(imgs[s : s + cfg.max_batch_images])

        with trusted(model):
            times = interleaved(
                {
                    "pw": lambda: path_widths(
                        model, x, dirs, y, cfg, generator=torch.Generator(device=device).manual_seed(0)
                    ),
                    "plain": plain,
                },
                repeats,
                device,
            )
        thr = median_ratio(times["plain"], times["pw"])  # throughput ratio = plain time / path-width time
        rows.append(
            [
                name,
                f"{m} x {directions} x {len(radii)} = {total}",
                str(cfg.max_batch_images),
                f"{thr:.3f}",
                record(f"path widths throughput {name}", thr >= 0.9),
            ]
        )
    print(f"\nPath widths, {repeats} interleaved rounds")
    print("\n5. path_widths throughput / plain batched inference throughput, same images (target >= 0.9)")
    print(table(rows, ["model", "points x dirs x radii", "budget", "ratio", "result"]))


# --- memory ----------------------------------------------------------------------------------
def _peak_child(what: str, budget: int, model_name: str, device: torch.device, points: int) -> dict:
    """Runs in a fresh subprocess: the extra peak memory (bytes) of one measurement."""
    model = load_reference(model_name, device)
    x, y = load_inputs(model_name, max(points, budget if what in ("pgd", "fwdbwd") else points), device)
    cfg = PathWidthConfig(directions=256, radii=MNIST_RADII, max_batch_images=budget)
    dirs = torch.randn(x[:points].shape, generator=torch.Generator().manual_seed(2)).to(device)
    pgd_cfg = PGDConfig(norm="linf", eps=0.3, steps=5, step_size=0.1, early_exit=False)
    with trusted(model):
        # Warm-up on tiny inputs, so that libraries and kernels are loaded before the baseline.
        path_widths(model, x[:1], dirs[:1], y[:1], PathWidthConfig(directions=2, radii=(1.0,), max_batch_images=2))
        pgd_attack(model, x[:2], y[:2], PGDConfig(norm="linf", eps=0.3, steps=1))
        if device.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        else:
            base = peak_rss_bytes()
        if what == "inference":  # one batch of B images, as path_widths would build them
            with torch.inference_mode():
                imgs = (x[:1] + 0.0 * torch.rand((budget, *x.shape[1:]), device=device)).clamp_(0, 1)
                model(imgs)
        elif what == "pathwidth":
            path_widths(
                model, x[:points], dirs, y[:points], cfg, generator=torch.Generator(device=device).manual_seed(0)
            )
        elif what == "fwdbwd":
            fwd_bwd_ce(model, x[:budget], y[:budget], pgd_cfg.steps)
        elif what == "pgd":
            pgd_attack(model, x[:budget], y[:budget], pgd_cfg, generator=torch.Generator(device=device).manual_seed(0))
        if device.type == "cuda":
            torch.cuda.synchronize()
            peak = torch.cuda.max_memory_allocated()
        else:
            peak = peak_rss_bytes()
    return {"extra_bytes": peak - base}


def _measure_peak(what: str, budget: int, model: str, device: torch.device, points: int) -> float:
    cmd = [
        sys.executable,
        __file__,
        "_peak",
        what,
        str(budget),
        "--model",
        model,
        "--points",
        str(points),
        "--device",
        device.type,
        "--threads",
        str(torch.get_num_threads()),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip().splitlines()[-1]
    return json.loads(out)["extra_bytes"] / 2**20


def bench_memory(device: torch.device, quick: bool) -> None:
    budgets = (512, 2048) if quick else (512, 2048, 8192)
    pgd_batches = (250, 1000) if quick else (250, 1000, 4000)
    model = "lenet-standard"
    rows, prev = [], None
    for b in budgets:
        ref = _measure_peak("inference", b, model, device, 1)
        pw_small = _measure_peak("pathwidth", b, model, device, 8)
        pw_big = _measure_peak("pathwidth", b, model, device, 32)
        worst = max(pw_small, pw_big)
        grows = prev is None or worst > prev
        prev = worst
        ok = worst <= 1.25 * ref and grows
        rows.append(
            [
                str(b),
                f"{ref:.1f}",
                f"{pw_small:.1f}",
                f"{pw_big:.1f}",
                f"{worst / max(ref, 1e-9):.2f}",
                record(f"path widths memory B={b}", ok),
            ]
        )
    print(
        f"\n6a. path_widths extra peak memory (MiB, {device.type}; one fresh process each) with "
        "max_batch_images = B, 256 directions x 6 radii per point; 8 points = 12,288 images, 32 points = 49,152"
    )
    print("    target: at most 1.25x plain inference on one batch of B images, whatever the workload; grows with B")
    print(
        table(
            rows,
            ["B (images)", "plain inference B", "path_widths 8 pts", "path_widths 32 pts", "worst / plain", "result"],
        )
    )
    rows, prev = [], None
    for b in pgd_batches:
        ref = _measure_peak("fwdbwd", b, model, device, 1)
        pgd = _measure_peak("pgd", b, model, device, 1)
        grows = prev is None or pgd > prev
        prev = pgd
        rows.append(
            [
                str(b),
                f"{ref:.1f}",
                f"{pgd:.1f}",
                f"{pgd / max(ref, 1e-9):.2f}",
                record(f"pgd memory B={b}", pgd <= 1.25 * ref and grows),
            ]
        )
    print("\n6b. pgd_attack extra peak memory (MiB) on a batch of B examples (5 steps, no early exit)")
    print("    target: at most 1.25x five plain forward+backward passes on the batch; grows with B")
    print(table(rows, ["B (examples)", "5 x fwd+bwd", "pgd_attack", "pgd / fwd+bwd", "result"]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "what", nargs="?", default="all", choices=["pgd", "nspgd", "pathwidth", "memory", "all", "_peak"]
    )
    parser.add_argument("args", nargs="*", help=argparse.SUPPRESS)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="fewer steps, points and rounds (a smoke run)")
    parser.add_argument("--resnet", action="store_true", help="also time a ResNet-20 on 3x32x32 inputs")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads for torch (default 1: on a shared machine several threads per process "
        "oversubscribe the cores and make every timing erratic)",
    )
    parser.add_argument("--model", default="lenet-standard", help=argparse.SUPPRESS)
    parser.add_argument("--points", type=int, default=8, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    device = device_from(args.device)
    torch.set_num_threads(args.threads)
    if args.what == "_peak":
        print(json.dumps(_peak_child(args.args[0], int(args.args[1]), args.model, device, args.points)))
        return 0
    torch.manual_seed(0)
    print(
        f"torch {torch.__version__}, device {device}, {torch.get_num_threads()} threads"
        + (f", {torch.cuda.get_device_name(device)}" if device.type == "cuda" else "")
    )
    models = ["lenet-standard", "lenet-pgd-at"] + (["resnet20"] if args.resnet else [])
    if args.what in ("pgd", "all"):
        bench_pgd(models, device, args.quick)
    if args.what in ("nspgd", "all"):
        bench_nspgd(models, device, args.quick)
    if args.what in ("pathwidth", "all"):
        bench_pathwidth(models, device, args.quick)
    if args.what in ("memory", "all"):
        bench_memory(device, args.quick)
    failed = [name for name, ok in RESULTS if not ok]
    print(
        f"\n{len(RESULTS) - len(failed)}/{len(RESULTS)} targets met"
        + (f"; missed: {', '.join(failed)}" if failed else "")
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
