"""The published results under leaderboard/results/: each file imports into a fresh database, was
made from the model file its card names today, and its metrics are exactly what the suite's
aggregation computes from its own per-example values (so no number was edited by hand)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from invarbench.attacks.checks import FLAG_NAMES
from invarbench.cards import resolve_card
from invarbench.evaluation.measure import aggregate, result_flags
from invarbench.store import Store
from invarbench.store.export import import_path
from invarbench.suites import load_suite

RESULTS = Path(__file__).resolve().parents[1] / "leaderboard" / "results"
FILES = sorted(p for p in RESULTS.rglob("*.json") if ".artifacts" not in p.parent.name)


def _same(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return (math.isnan(a) and math.isnan(b)) or a == b


def test_the_reference_models_have_published_results():
    names = {p.relative_to(RESULTS).as_posix() for p in FILES}
    for card in ("mnist5k/lenet-standard", "mnist5k/lenet-pgd-at"):
        dataset = card.split("/")[0]
        version = load_suite("standard", dataset).version
        assert f"{card}__standard-v{version}.json" in names, "re-run the reference models with the current suite"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(RESULTS).as_posix())
def test_a_published_result_imports_and_its_metrics_follow_from_its_values(path, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    import_path(store, path)
    (listed,) = store.list_runs()
    run = store.get_run(listed.id)
    assert run.status == "finished" and run.data_source is None

    card = resolve_card(run.model.card_id, None).card
    file_sha = card.source.hub.sha256 if card.source.hub is not None else card.source.sha256
    assert run.model.file_sha256 == file_sha, "the card now names another model file: re-evaluate and re-export"

    suite = load_suite(run.suite_name, run.dataset)
    if suite.version != run.suite_version:
        pytest.skip(f"made with {run.suite_name} v{run.suite_version}; the suite is now v{suite.version}")
    per_example: dict[str, dict[str, list]] = {}
    for _, values in sorted(store.stored_batches(run.id).items()):
        for measurement, fields in values.items():
            for key, vals in fields.items():
                per_example.setdefault(measurement, {}).setdefault(key, []).extend(vals)
    assert len(per_example["clean"]["label"]) == run.examples_effective == suite.num_examples
    recomputed = {m.name: m for m in aggregate(per_example, suite)}
    assert sorted(recomputed) == sorted(m.name for m in run.metrics)
    for stored in run.metrics:
        again = recomputed[stored.name]
        for field in ("value", "stderr", "ci_low", "ci_high"):
            assert _same(getattr(stored, field), getattr(again, field)), (stored.name, field)
        assert stored.n == again.n
    # The flags read from the per-example values are those stored (the others come from the checks).
    assert set(result_flags(per_example, suite)) == set(run.flags) - set(FLAG_NAMES)


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(RESULTS).as_posix())
def test_published_minimal_distances_are_finite_and_never_above_fmn(path, tmp_path):
    """The minimal distance is an honest upper bound: the smaller of FMN's and the boundary search's,
    finite for every correctly classified example, 0 for the others."""
    store = Store(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    import_path(store, path)
    (listed,) = store.list_runs()
    values: dict[str, list] = {}
    for _, batch in sorted(store.stored_batches(listed.id).items()):
        for key, vals in batch.get("min_norm", {}).items():
            values.setdefault(key, []).extend(vals)
    if "fmn_distance" not in values:
        pytest.skip("made before the boundary search")
    for d, f, s, method in zip(values["distance"], values["fmn_distance"], values["search_distance"], values["method"]):
        if method == "misclassified":
            assert d == 0
        else:
            assert math.isfinite(d) and d == min(f, s) and d <= f
