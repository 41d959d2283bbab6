"""The per-batch measurements of a suite and their aggregation: pure computation, no I/O.

The contract with the runner (which stores, resumes and reports progress):

- ``reliability_flags(model, data, suite, generator)`` runs once before the batches and returns
  the flags of the model (NaN/Inf logits raise instead);
- ``measure_batch(model, data, start, stop, suite, generator, note=None)`` returns, per
  measurement, the per-example (or per-pair) values of examples ``start:stop`` of ``data`` as
  JSON-ready lists. It depends only on its arguments, so a resumed run recomputes nothing and
  changes nothing. ``note`` (optional) hears what it is working on, step by step;
- ``aggregate(per_example, suite)`` turns the concatenation of all batches' values into metrics.

What ``measure_batch`` returns (every list has one entry per example of the batch, or per
NSPGD pair whose *source* lies in the batch; docs/suites.md documents each field):

- ``clean``: ``label``, ``pred``, ``correct``, ``confidence`` (max softmax probability);
- ``pgd_linf`` / ``pgd_l2``: ``robust``, ``broken_at``;
- ``min_norm``: ``distance`` (L2; 0 when misclassified clean, ``inf`` when no adversarial
  example was found);
- ``nspgd``: ``pair``, ``source``, ``target``, ``source_label``, ``target_label``, ``valid``
  (the model classifies the source correctly; only valid pairs walk), ``initial_l2``,
  ``remaining_l2``, ``closure``, ``still_source``, ``accepted_steps``, ``p_source_start``,
  ``p_source_final`` (``None`` for invalid pairs);
- ``path_width`` (valid pairs among the first ``max_pairs``): ``pair``, ``point_valid``,
  ``p0``, ``q_lo``, ``q_hi`` (per point, per radius), ``width``, ``censored`` (per point; ``None``
  where the walk had stopped before the point) and ``mean_width`` (over the valid points).

Randomness: every measurement draws from its own generator, seeded from one draw of the
batch's generator and the measurement's name, so adding or removing a measurement in a suite
changes no other measurement's numbers. The NSPGD pairs depend only on the suite's seed and
the evaluated labels (:func:`pair_plan`).
"""

from __future__ import annotations

import contextlib
import math
import zlib
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from invarbench.attacks.checks import ReliabilityConfig
from invarbench.attacks.checks import reliability_flags as _check_flags
from invarbench.attacks.minnorm import MinNormConfig, boundary_search_l2, min_l2_distance
from invarbench.attacks.nspgd import NSPGDConfig, nspgd
from invarbench.attacks.pathwidth import PathWidthConfig, path_widths
from invarbench.attacks.pgd import PGDConfig, pgd_attack
from invarbench.data.registry import EvalData
from invarbench.metrics.stats import MetricValue, ece_metric, mean_metric, median_metric, proportion_metric
from invarbench.errors import ModelOutputError
from invarbench.models.wrapper import check_finite_logits
from invarbench.progress import Note
from invarbench.suites.schema import ChecksSpec, MinNormSpec, NSPGDSpec, PathWidthSpec, PGDSpec, Suite

PerExample = dict[str, dict[str, list]]

# The order of the measurement generators is fixed: a suite without a measurement still skips its seed.
_MEASUREMENTS = ("pgd_linf", "pgd_l2", "min_norm", "nspgd", "path_width")


# --- suite specs -> attack configurations ---------------------------------------------------
def pgd_config(spec: PGDSpec, norm: str = "linf") -> PGDConfig:
    return PGDConfig(norm=norm, eps=spec.eps, steps=spec.steps, step_size=spec.step_size, restarts=spec.restarts)


def min_norm_config(spec: MinNormSpec) -> MinNormConfig:
    return MinNormConfig(method=spec.method, steps=spec.steps, gamma=spec.gamma, gamma_final=spec.gamma_final,
                         alpha_init=spec.alpha_init, alpha_final=spec.alpha_final, refine_steps=spec.refine_steps)


def nspgd_config(spec: NSPGDSpec, record_at: tuple[int, ...] = ()) -> NSPGDConfig:
    return NSPGDConfig(eta=spec.eta, delta=spec.delta, max_iter=spec.max_iter, record_at=record_at)


def path_width_config(spec: PathWidthSpec) -> PathWidthConfig:
    return PathWidthConfig(directions=spec.directions, radii=tuple(spec.radii), q_lo=spec.q_lo, q_hi=spec.q_hi,
                           width_fraction=spec.width_fraction)


def checks_config(spec: ChecksSpec) -> ReliabilityConfig:
    return ReliabilityConfig(
        max_examples=spec.examples, randomness_atol=spec.randomness_atol, randomness_rtol=spec.randomness_rtol,
        probability_atol=spec.probability_atol, probability_fraction=spec.probability_fraction,
        zero_gradient_fraction=spec.zero_gradient_fraction, nan_gradient_fraction=spec.nan_gradient_fraction,
        batch_atol=spec.batch_atol, batch_rtol=spec.batch_rtol,
    )


# --- NSPGD pairs ------------------------------------------------------------------------------
@dataclass(frozen=True)
class PairPlan:
    """NSPGD's (source, target) pairs: pair ``k`` walks from example ``sources[k]`` to ``targets[k]``
    (-1 when every evaluated example has the source's class, so no target exists)."""

    sources: np.ndarray
    targets: np.ndarray


def pair_plan(labels: torch.Tensor | np.ndarray, spec: NSPGDSpec, seed: int, *, start: int = 0,
              stop: int | None = None) -> PairPlan:
    """The pairs whose source lies in ``start:stop`` (default: all), in pair order.

    Sources are the first ``num_pairs`` examples. ``seeded_other_class``: the target is drawn
    uniformly from the examples of another class, by the first 64-bit output of PCG64 seeded
    with ``SeedSequence([seed, source])`` taken modulo their count (exact across numpy versions);
    ``next_other_class``: the next example of another class, wrapping around at the end.
    """
    y = labels.cpu().numpy() if isinstance(labels, torch.Tensor) else np.asarray(labels)
    n = int(y.shape[0])
    count = min(spec.pairs.num_pairs, n)
    hi = count if stop is None else min(stop, count)
    sources = np.arange(min(start, hi), hi, dtype=np.int64)
    targets = np.full(sources.shape, -1, dtype=np.int64)
    for k, i in enumerate(sources):
        others = np.flatnonzero(y != y[i])
        if others.size == 0:
            continue
        if spec.pairs.rule == "seeded_other_class":
            raw = np.random.PCG64(np.random.SeedSequence([seed, int(i)])).random_raw()
            targets[k] = others[int(raw) % others.size]
        else:
            after = others[others > i]
            targets[k] = after[0] if after.size else others[0]
    return PairPlan(sources=sources, targets=targets)


# --- the contract ----------------------------------------------------------------------------
def _device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("cpu")


def _trusted(model: nn.Module):  # noqa: ANN202 - a context manager
    """The wrapper's range check is skipped inside attacks, which clip their own iterates."""
    trusted = getattr(model, "trusted_inputs", None)
    return trusted() if trusted is not None else contextlib.nullcontext()


@contextlib.contextmanager
def _finite_logits(model: nn.Module, measurement: str, start: int, stop: int):  # noqa: ANN202 - a context manager
    """Every logit a measurement uses must be finite: NaN logits on a perturbed input would read as
    class 0 in an argmax and make examples "robust" that are not. The wrapper counts the inputs with
    non-finite logits; this raises :class:`ModelOutputError` when any occurred during the
    measurement, also when the measurement then failed on them (the NaN is the cause to report).
    Models without the wrapper's counter are not watched."""
    reset = getattr(model, "reset_nonfinite", None)
    if reset is None:
        yield
        return
    reset()
    try:
        yield
    except Exception:
        count = model.nonfinite_count()
        if count == 0:
            raise
        raise _nonfinite_error(measurement, count, start, stop) from None
    count = model.nonfinite_count()
    if count:
        raise _nonfinite_error(measurement, count, start, stop)


def _nonfinite_error(measurement: str, count: int, start: int, stop: int) -> ModelOutputError:
    return ModelOutputError(
        f"the model returned NaN or Inf logits for {count} input(s) during {measurement} (examples {start}-{stop - 1}), "
        "so its numbers cannot be computed: make the model's logits finite for every input in [0, 1] "
        "(e.g. clamp before a log or a division)"
    )


def _generators(generator: torch.Generator) -> dict[str, torch.Generator]:
    base = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
    return {
        name: torch.Generator(device=generator.device).manual_seed((base + zlib.crc32(name.encode())) % 2**63)
        for name in _MEASUREMENTS
    }


def reliability_flags(model: nn.Module, data: EvalData, suite: Suite, generator: torch.Generator) -> list[str]:
    """Flags that make the model's numbers untrustworthy as they stand (see METHODS.md §4)."""
    cfg = checks_config(suite.checks)
    device = _device(model)
    x = data.x[: cfg.max_examples].to(device)
    y = data.y[: cfg.max_examples].to(device)
    return _check_flags(model, x, y, cfg, generator=generator)


def _floats(t: torch.Tensor) -> list:
    return t.detach().cpu().double().tolist()


def _stepper(note: Note | None, name: str, total: int, unit: str = "step"):  # noqa: ANN202 - an on_step callback
    """An attack's ``on_step(done, active)`` that reports ``"<name> <unit> done/total (active left)"``."""
    if note is None:
        return None
    return lambda done, active: note(f"{name} {unit} {done}/{total} ({active} left)")


def measure_batch(
    model: nn.Module, data: EvalData, start: int, stop: int, suite: Suite, generator: torch.Generator,
    note: Note | None = None,
) -> PerExample:
    """Every per-example value the suite keeps for examples ``start:stop``, keyed by measurement.

    ``note``, when given, is told what runs now ("pgd_l2 step 12/40 (57 left)", ...)."""
    device = _device(model)
    gens = _generators(generator)
    x = data.x[start:stop].to(device)
    y = data.y[start:stop].to(device)
    with torch.no_grad():
        logits = model(x)
    check_finite_logits(logits)
    confidence, pred = torch.softmax(logits.double(), dim=1).max(dim=1)
    correct = pred == y
    out: PerExample = {"clean": {"label": y.tolist(), "pred": pred.tolist(), "correct": correct.tolist(),
                                 "confidence": _floats(confidence)}}
    m = suite.measurements
    with _trusted(model):
        for name, norm, spec in (("pgd_linf", "linf", m.pgd_linf), ("pgd_l2", "l2", m.pgd_l2)):
            if spec is not None:
                cfg = pgd_config(spec, norm)
                with _finite_logits(model, name, start, stop):
                    res = pgd_attack(model, x, y, cfg, generator=gens[name],
                                     on_step=_stepper(note, name, cfg.steps * cfg.restarts))
                out[name] = {"robust": res.robust.tolist(), "broken_at": res.broken_at.tolist()}
        if m.min_norm is not None:
            with _finite_logits(model, "min_norm", start, stop):
                out["min_norm"] = _measure_min_norm(model, data, start, stop, m.min_norm, correct, gens["min_norm"],
                                                    note)
        if m.nspgd is not None:
            with _finite_logits(model, "nspgd", start, stop):
                out.update(_measure_pairs(model, data, start, stop, suite, correct, gens["path_width"], note))
    return out


def _measure_min_norm(model: nn.Module, data: EvalData, start: int, stop: int, spec: MinNormSpec,
                      correct: torch.Tensor, generator: torch.Generator, note: Note | None = None) -> dict[str, list]:
    """FMN's distance, the boundary search's, and the smaller of the two with the method that gave it."""
    device = _device(model)
    x = data.x[start:stop].to(device)
    y = data.y[start:stop].to(device)
    fmn = min_l2_distance(model, x, y, min_norm_config(spec), generator=generator,
                          on_step=_stepper(note, "min_norm", spec.steps)).distance
    search = torch.full_like(fmn, math.inf)
    rows = torch.nonzero(correct).squeeze(1)
    if spec.search_endpoints > 0 and rows.numel() > 0:
        if note is not None:
            note(f"min_norm boundary search ({int(rows.numel())} examples)")
        endpoints = nearest_other_class_endpoints(model, data, start + rows.cpu(), spec.search_endpoints)
        res = boundary_search_l2(model, x[rows], y[rows], data.x[endpoints].to(device),
                                 refine_steps=spec.refine_steps)
        search[rows] = res.distance
    distance = torch.where(correct, torch.minimum(fmn, search), torch.zeros_like(fmn))
    method = ["misclassified" if not c else "search" if s < f else "fmn" if math.isfinite(f) else "none"
              for c, f, s in zip(correct.tolist(), fmn.tolist(), search.tolist())]
    return {"distance": _floats(distance), "fmn_distance": _floats(fmn), "search_distance": _floats(search),
            "method": method}


def nearest_other_class_endpoints(model: nn.Module, data: EvalData, examples: torch.Tensor, k: int) -> torch.Tensor:
    """For each of the ``examples`` (indices into ``data``), the ``k`` nearest (L2) evaluated images of
    another class that the model does not classify as the example's class (in practice: the
    correctly classified ones), nearest first. Returns ``[len(examples), k]`` int64 indices into
    ``data``; where fewer than ``k`` exist, the nearest found is repeated (an example with none
    gets its own index, whose segment has no length and no adversarial endpoint).

    Distances are computed pair by pair (no matrix-product shortcut), so an example's endpoints do
    not depend on the other examples of its batch; ties go to the lower index. The model's
    predictions are computed only for the images looked at, nearest first."""
    device = _device(model)
    flat = data.x.flatten(1).to(device)
    labels = data.y.to(device)
    idx = examples.to(device)
    dist = torch.cdist(flat[idx].double(), flat.double(), compute_mode="donot_use_mm_for_euclid_dist")
    dist[labels[None, :] == labels[idx][:, None]] = math.inf
    order = torch.sort(dist, dim=1, stable=True).indices
    finite = torch.isfinite(torch.gather(dist, 1, order))
    n_all = flat.shape[0]
    pred = torch.full((n_all,), -1, dtype=torch.long, device=device)  # -1: not predicted yet
    chosen = [[] for _ in range(idx.shape[0])]
    width = 2 * k
    lo = 0
    while lo < n_all:
        need = [i for i in range(idx.shape[0]) if len(chosen[i]) < k]
        if not need:
            break
        hi = min(n_all, lo + width)
        window = order[need, lo:hi]
        todo = torch.unique(window[(pred[window] < 0) & finite[need, lo:hi]])
        for chunk in todo.split(max(1, int(examples.shape[0]))):
            with torch.no_grad():
                pred[chunk] = model(flat[chunk].view(-1, *data.x.shape[1:])).argmax(dim=1)
        for r, i in enumerate(need):
            cls = int(labels[idx[i]])
            for j, ok in zip(window[r].tolist(), finite[i, lo:hi].tolist()):
                if ok and int(pred[j]) != cls and len(chosen[i]) < k:
                    chosen[i].append(j)
        lo, width = hi, width * 2
    rows = [c + [c[0]] * (k - len(c)) if c else [int(idx[i])] * k for i, c in enumerate(chosen)]
    return torch.tensor(rows, dtype=torch.long)


def result_flags(per_example: PerExample, suite: Suite) -> list[str]:
    """Flags read from a finished run's per-example values (see :mod:`invarbench.attacks.checks`):
    ``gradient_attack_weaker_than_search`` when the boundary search beat FMN on more than
    ``checks.search_beats_gradient_fraction`` of the correctly classified examples."""
    flags = []
    min_norm = per_example.get("min_norm")
    if min_norm is not None and "method" in min_norm:
        correct = [mth for mth in min_norm["method"] if mth != "misclassified"]
        beaten = sum(1 for mth in correct if mth == "search")
        if correct and beaten / len(correct) > suite.checks.search_beats_gradient_fraction:
            flags.append("gradient_attack_weaker_than_search")
    return flags


def _measure_pairs(model: nn.Module, data: EvalData, start: int, stop: int, suite: Suite,
                   correct: torch.Tensor, generator: torch.Generator, note: Note | None = None) -> PerExample:
    spec, pw = suite.measurements.nspgd, suite.measurements.path_width
    plan = pair_plan(data.y, spec, suite.seed, start=start, stop=stop)
    n = len(plan.sources)
    valid = np.array([bool(correct[s - start]) and t >= 0 for s, t in zip(plan.sources, plan.targets)], dtype=bool)
    fields: dict[str, list] = {
        "pair": plan.sources.tolist(),  # pair k has source k
        "source": plan.sources.tolist(),
        "target": plan.targets.tolist(),
        "source_label": data.y[plan.sources].tolist(),
        "target_label": [int(data.y[t]) if t >= 0 else None for t in plan.targets],
        "valid": valid.tolist(),
    }
    names = ("initial_l2", "remaining_l2", "closure", "still_source", "accepted_steps", "p_source_start",
             "p_source_final")
    for key in names:
        fields[key] = [None] * n
    result: PerExample = {"nspgd": fields}
    if pw is not None:
        result["path_width"] = {k: [] for k in ("pair", "point_valid", "p0", "q_lo", "q_hi", "width", "censored",
                                                "mean_width")}
    # Pairs with path widths record their path points; the others need not keep them.
    wants_width = np.array([pw is not None and (pw.max_pairs is None or s < pw.max_pairs) for s in plan.sources],
                           dtype=bool)
    device = _device(model)
    for group_width in (True, False):
        rows = np.flatnonzero(valid & (wants_width == group_width))
        if rows.size == 0:
            continue
        src = torch.as_tensor(plan.sources[rows])
        tgt = torch.as_tensor(plan.targets[rows])
        cfg = nspgd_config(spec, tuple(pw.points) if group_width else ())
        res = nspgd(model, data.x[src].to(device), data.y[src].to(device), data.x[tgt].to(device), cfg,
                    on_step=_stepper(note, "nspgd", spec.max_iter, "iteration"))
        initial = (data.x[src] - data.x[tgt]).flatten(1).double().norm(dim=1)
        values = {"initial_l2": _floats(initial), "remaining_l2": _floats(res.remaining_l2),
                  "closure": _floats(res.closure), "still_source": res.still_source.tolist(),
                  "accepted_steps": res.accepted_steps.tolist(), "p_source_start": _floats(res.p_source_start),
                  "p_source_final": _floats(res.p_source_final)}
        for key, vals in values.items():
            for r, v in zip(rows, vals):
                fields[key][r] = v
        if group_width:
            result["path_width"] = _measure_widths(model, plan.sources[rows], data.y[src], res, pw, generator, note)
    return result


def _measure_widths(model: nn.Module, pairs: np.ndarray, classes: torch.Tensor, res, pw: PathWidthSpec,
                    generator: torch.Generator, note: Note | None = None
                    ) -> dict[str, list]:  # noqa: ANN001 - an NSPGDResult
    valid = res.path_valid  # [n, P]; a walking pair's first point (x0) is always valid
    points = res.path_points[valid]
    dirs = res.path_dirs[valid]
    cls = classes.to(valid.device)[:, None].expand(valid.shape)[valid]
    on_step = None if note is None else (lambda done, total: note(f"path_width point {done}/{total}"))
    widths = path_widths(model, points, dirs, cls, path_width_config(pw), generator=generator, on_step=on_step)
    n, p = valid.shape
    flat_idx = torch.full((n, p), -1, dtype=torch.long)
    flat_idx[valid.cpu()] = torch.arange(points.shape[0])
    p0, q_lo, q_hi = _floats(widths.p0), _floats(widths.q_lo), _floats(widths.q_hi)
    width, censored = _floats(widths.width), widths.censored.tolist()
    out: dict[str, list] = {k: [] for k in ("pair", "point_valid", "p0", "q_lo", "q_hi", "width", "censored",
                                            "mean_width")}
    for k in range(n):
        idx = flat_idx[k].tolist()
        out["pair"].append(int(pairs[k]))
        out["point_valid"].append([i >= 0 for i in idx])
        for key, vals in (("p0", p0), ("q_lo", q_lo), ("q_hi", q_hi), ("width", width), ("censored", censored)):
            out[key].append([vals[i] if i >= 0 else None for i in idx])
        ws = [width[i] for i in idx if i >= 0]
        out["mean_width"].append(math.fsum(ws) / len(ws) if ws else None)
    return out


def aggregate(per_example: PerExample, suite: Suite) -> list[MetricValue]:
    """The suite's metrics from the concatenated per-example values of all batches."""
    clean = per_example["clean"]
    metrics = [proportion_metric("clean_accuracy", torch.tensor(clean["correct"]))]
    for name, metric in (("pgd_linf", "robust_accuracy_linf"), ("pgd_l2", "robust_accuracy_l2")):
        if name in per_example:
            metrics.append(proportion_metric(metric, torch.tensor(per_example[name]["robust"])))
    if "min_norm" in per_example:
        distance = torch.tensor(per_example["min_norm"]["distance"], dtype=torch.float64)
        metrics.append(median_metric("median_min_l2_distance", distance, seed=suite.seed))
    if "nspgd" in per_example:
        pairs = per_example["nspgd"]
        ok = [i for i, v in enumerate(pairs["valid"]) if v]
        metrics.append(mean_metric("nspgd_closure", torch.tensor([pairs["closure"][i] for i in ok],
                                                                 dtype=torch.float64)))
        metrics.append(mean_metric("nspgd_target_distance_l2",
                                   torch.tensor([pairs["remaining_l2"][i] for i in ok], dtype=torch.float64)))
    if "path_width" in per_example:
        widths = [w for w in per_example["path_width"]["mean_width"] if w is not None]
        metrics.append(mean_metric("path_width", torch.tensor(widths, dtype=torch.float64)))
    if suite.measurements.ece is not None:
        metrics.append(ece_metric("ece", torch.tensor(clean["confidence"], dtype=torch.float64),
                                  torch.tensor(clean["correct"]), n_bins=suite.measurements.ece.bins,
                                  seed=suite.seed))
    return metrics
