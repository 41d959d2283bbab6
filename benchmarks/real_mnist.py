"""The measurement suite on real MNIST: does adversarial training widen equi-confidence paths?

Run ``.venv/bin/python benchmarks/real_mnist.py [--quick] [--device cpu|cuda]``.

1. Reads the 10,000 real MNIST test images (IDX gzip files in ``../shared/external/mnist``
   next to the checkout, or ``--mnist-dir``) with invarbench's ``mnist`` data set.
2. Trains two LeNets on the first ``--train`` images (default 8,000) with the reference
   models' training code (``invarbench.reference.train``: the same loop, optimiser, PGD
   adversarial examples and seeds): a standard one and a PGD-adversarially-trained one
   (L-inf, eps 0.3, 10 steps). The epochs are scaled so that each model gets as many
   optimiser updates as its mnist5k reference model (4,000 images): 8 and 30 epochs there.
3. Evaluates both on the *other* images (the last ``--eval`` of them, never seen in training)
   with the suite measurements (``invarbench.evaluation.measure``: ``measure_batch`` per batch of
   250, seeded like the runner, then ``aggregate``) of ``--suite`` (default ``standard``) for
   the ``mnist`` data set, and prints clean accuracy, robust accuracies, the median minimal L2
   distance, NSPGD closure and the mean path width, each with its 95 % interval.
4. Runs the same suite's path-width measurement (NSPGD + path widths only) of
   ``standard/mnist5k`` on the two bundled reference models (``--reference``; on by default).

``--pairs`` and ``--width-pairs`` cap the NSPGD pairs and the pairs with path widths (the
standard suite's 500 and 100 cost minutes of CPU per model); the printed header says which
settings ran. ``--quick`` is a smoke run (small training set, few epochs, tiny suite).
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run from a checkout without installing

from invarbench.data import load_eval_data
from invarbench.data.registry import EvalData
from invarbench.evaluation.measure import measure_batch
from invarbench.evaluation.pipeline import batch_seed
from invarbench.measurements import aggregate, metric_specs
from invarbench.models.wrapper import ModelWrapper
from invarbench.reference import train as reference_train
from invarbench.suites import Suite, load_suite

DEFAULT_MNIST_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "external" / "mnist"
REFERENCE_IMAGES = 4000  # the mnist5k train split the reference models were trained on
METRICS = tuple(spec.name for spec in metric_specs())  # every registered metric, in registry order


def mnist_available(folder: Path = DEFAULT_MNIST_DIR) -> bool:
    return all(
        (folder / f"t10k-{kind}-idx{n}-ubyte.gz").is_file() or (folder / f"t10k-{kind}-idx{n}-ubyte").is_file()
        for kind, n in (("images", 3), ("labels", 1))
    )


def load_real_mnist(folder: Path) -> EvalData:
    """The 10,000 MNIST test images in their published order (offline: never downloads)."""
    os.environ["INVARBENCH_OFFLINE"] = "1"
    return load_eval_data("mnist", data_dir=folder)


def part(data: EvalData, start: int, stop: int) -> EvalData:
    return replace(data, x=data.x[start:stop], y=data.y[start:stop], total=stop - start)


def train_configs(n_train: int, quick: bool) -> list[reference_train.TrainConfig]:
    """The reference configurations with their epochs scaled to the same number of updates."""
    configs = []
    for cfg in reference_train.CONFIGS:
        if quick:
            epochs, warmup, steps = (2, 0, cfg.attack_steps) if not cfg.adversarial else (3, 1, 3)
            cfg = replace(
                cfg,
                epochs=epochs,
                eps_warmup_epochs=warmup if cfg.adversarial else 0,
                attack_steps=steps,
                attack_step_size=cfg.attack_step_size * cfg.attack_steps / steps,
            )
        else:
            scale = REFERENCE_IMAGES / n_train
            epochs = max(1, round(cfg.epochs * scale))
            warmup = max(1, round(cfg.eps_warmup_epochs * scale)) if cfg.eps_warmup_epochs else 0
            cfg = replace(cfg, epochs=epochs, eps_warmup_epochs=warmup)
        configs.append(cfg)
    return configs


def train_models(
    train: EvalData,
    configs: list[reference_train.TrainConfig],
    log=print,
) -> dict[str, ModelWrapper]:
    models = {}
    for cfg in configs:
        t0 = time.perf_counter()
        net = reference_train.train(cfg, log=log, data=train)
        log(f"{cfg.name}: trained on {len(train)} images in {time.perf_counter() - t0:.0f} s")
        models[cfg.name] = ModelWrapper(net, num_classes=10, input_shape=(1, 28, 28))
    return models


def suite_for(
    name: str, dataset: str, *, pairs: int | None = None, width_pairs: int | None = None, widths_only: bool = False
) -> Suite:
    """Suite ``name/dataset``, with the NSPGD pairs and path-width pairs capped when asked."""
    suite = load_suite(name, dataset)
    m = suite.measurements
    nspgd, pw = m.nspgd, m.path_width
    if nspgd is not None and pairs is not None:
        nspgd = dataclasses.replace(
            nspgd, pairs=dataclasses.replace(nspgd.pairs, num_pairs=min(pairs, nspgd.pairs.num_pairs))
        )
    if pw is not None and width_pairs is not None:
        pw = dataclasses.replace(pw, max_pairs=min(width_pairs, pw.max_pairs or width_pairs))
    update = {"nspgd": nspgd, "path_width": pw}
    if widths_only:
        update.update(pgd_linf=None, pgd_l2=None, min_norm=None)
    return suite.model_copy(update={"measurements": m.replace(**update)})


def evaluate(
    model: torch.nn.Module, data: EvalData, suite: Suite, device: torch.device, batch_size: int = 250
) -> dict[str, object]:
    """The suite's metrics of ``model`` on ``data`` (batched and seeded as the runner does)."""
    model = model.to(device)
    per_example: dict[str, dict[str, list]] = {}
    for start in range(0, len(data), batch_size):
        stop = min(start + batch_size, len(data))
        gen = torch.Generator(device=device).manual_seed(batch_seed(suite.seed, start))
        values = measure_batch(model, data, start, stop, suite, gen)[0]
        for measurement, fields in values.items():
            merged = per_example.setdefault(measurement, {})
            for key, vals in fields.items():
                merged.setdefault(key, []).extend(vals)
    return {m.name: m for m in aggregate(per_example, suite)}


def fmt(metric) -> str:  # a MetricValue
    if metric is None:
        return "-"
    v = metric.value
    if metric.ci_low is None or math.isnan(metric.ci_low):
        return f"{v:.3f}"
    return f"{v:.3f} [{metric.ci_low:.3f}, {metric.ci_high:.3f}]"


def print_table(results: dict[str, dict[str, object]], title: str) -> None:
    names = list(results)
    rows = [
        [metric] + [fmt(results[n].get(metric)) for n in names]
        for metric in METRICS
        if any(metric in results[n] for n in names)
    ]
    rows.append(
        ["n (path-width pairs)"]
        + [str(results[n]["path_width"].n) if "path_width" in results[n] else "-" for n in names]
    )
    header = ["metric (95% interval)"] + names
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    print(f"\n{title}")
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)))


def answer(results: dict[str, dict[str, object]], standard: str, robust: str) -> str:
    a, b = results[standard].get("path_width"), results[robust].get("path_width")
    if a is None or b is None:
        return "no path widths measured"
    wider = b.value > a.value
    separated = (
        b.ci_low is not None and a.ci_high is not None and (b.ci_low > a.ci_high if wider else b.ci_high < a.ci_low)
    )
    verb = "WIDER" if wider else "NOT wider"
    return (
        f"{robust} path width {b.value:.3f} vs {standard} {a.value:.3f}: the adversarially trained model's "
        f"equi-confidence paths are {verb} "
        f"({'the 95% intervals do not overlap' if separated else 'the 95% intervals overlap'})"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mnist-dir", type=Path, default=DEFAULT_MNIST_DIR)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--quick", action="store_true", help="a smoke run: 1,000 training images, tiny suite")
    parser.add_argument("--train", type=int, default=8000, help="train on the first N test images")
    parser.add_argument("--eval", type=int, default=1000, help="evaluate on the last N images (disjoint from --train)")
    parser.add_argument("--suite", default="standard", choices=["quick", "standard"])
    parser.add_argument("--pairs", type=int, default=200, help="cap on NSPGD pairs (standard suite: 500)")
    parser.add_argument("--width-pairs", type=int, default=40, help="cap on path-width pairs (standard suite: 100)")
    parser.add_argument("--no-reference", action="store_true", help="skip the bundled reference models")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.quick:
        args.train, args.eval, args.suite, args.pairs, args.width_pairs = 1000, 200, "quick", 10, 5
    if not mnist_available(args.mnist_dir):
        print(f"real MNIST test files not found in {args.mnist_dir}", file=sys.stderr)
        return 2
    device = torch.device(args.device)
    data = load_real_mnist(args.mnist_dir)
    n = len(data)
    if args.train + args.eval > n:
        raise SystemExit(f"--train {args.train} + --eval {args.eval} exceeds the {n} images")
    train, held_out = part(data, 0, args.train), part(data, n - args.eval, n)
    torch.manual_seed(0)
    configs = train_configs(args.train, args.quick)
    print(
        f"real MNIST: train on test images 0..{args.train - 1}, evaluate on {n - args.eval}..{n - 1}; "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {device}"
    )
    for cfg in configs:
        print(
            f"  {cfg.name}: {cfg.epochs} epochs, adversarial={cfg.adversarial}, eps {cfg.eps}, "
            f"{cfg.attack_steps} steps, warm-up {cfg.eps_warmup_epochs} epochs"
        )
    models = train_models(train, configs, log=lambda s: print("  " + s, flush=True))
    suite = suite_for(args.suite, "mnist", pairs=args.pairs, width_pairs=args.width_pairs)
    m = suite.measurements
    print(
        f"suite {suite.name}/mnist v{suite.version} on {len(held_out)} held-out images; NSPGD pairs "
        f"{m.nspgd.pairs.num_pairs}, path widths on the first {m.path_width.max_pairs} pairs, "
        f"{m.path_width.directions} directions, radii {list(m.path_width.radii)}"
    )
    results = {}
    for name, model in models.items():
        t0 = time.perf_counter()
        results[name] = evaluate(model, held_out, suite, device)
        print(f"  {name}: evaluated in {time.perf_counter() - t0:.0f} s", flush=True)
    print_table(results, f"Real MNIST, {len(held_out)} held-out test images (suite {suite.name}, capped as above)")
    print("\n" + answer(results, "lenet-standard", "lenet-pgd-at"))

    if not args.no_reference:
        from invarbench.cards import resolve_card
        from invarbench.models.loading import load_model

        ref_suite = suite_for(
            args.suite,
            "mnist5k",
            widths_only=True,
            **({"pairs": args.pairs, "width_pairs": args.width_pairs} if args.quick else {}),
        )
        rm = ref_suite.measurements
        ref_data = load_eval_data("mnist5k", limit=ref_suite.num_examples)
        print(
            f"\nbundled reference models: {ref_suite.name}/mnist5k v{ref_suite.version} path-width measurement "
            f"({rm.nspgd.pairs.num_pairs} NSPGD pairs, path widths on the first {rm.path_width.max_pairs}) "
            f"on {len(ref_data)} mnist5k test images"
        )
        ref_results = {}
        for name in ("lenet-standard", "lenet-pgd-at"):
            t0 = time.perf_counter()
            model = load_model(resolve_card(f"mnist5k/{name}", None), device).wrapper
            ref_results[f"mnist5k/{name}"] = evaluate(model, ref_data, ref_suite, device)
            print(f"  mnist5k/{name}: evaluated in {time.perf_counter() - t0:.0f} s", flush=True)
        print_table(ref_results, "Bundled reference models on mnist5k")
        print("\n" + answer(ref_results, "mnist5k/lenet-standard", "mnist5k/lenet-pgd-at"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
