"""The published results under leaderboard/results/: each file imports into a fresh database, was
made from the model file its card names today, and its metrics are exactly what the suite's
aggregation computes from its own per-example values (so no number was edited by hand)."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace

import pytest

from invarbench.cards import resolve_card
from invarbench.errors import ValidationError
from invarbench.evaluation.measure import merge_batches
from invarbench.store import Store
from invarbench.store.document_checks import check_metrics_follow, recorded_suite
from invarbench.store.results_files import import_path
from invarbench.suites import load_suite

RESULTS = Path(__file__).resolve().parents[1] / "leaderboard" / "results"
FILES = sorted(p for p in RESULTS.rglob("*.json") if ".artifacts" not in p.parent.name)


def test_the_reference_models_have_published_results():
    names = {p.relative_to(RESULTS).as_posix() for p in FILES}
    for card in ("mnist5k/lenet-standard", "mnist5k/lenet-pgd-at"):
        dataset = card.split("/")[0]
        version = load_suite("standard", dataset).version
        assert f"{card}__standard-v{version}.json" in names, "re-run the reference models with the current suite"


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.relative_to(RESULTS).as_posix())
def test_a_published_result_imports_and_its_metrics_follow_from_its_values(path, tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'rebuilt.db'}")
    import_path(store, path)  # the results door recomputes the metrics too: the same function as below
    (listed,) = store.list_runs()
    run = store.get_run(listed.id)
    assert run.status == "finished" and run.data_source is None

    card = resolve_card(run.model.card_id, None).card
    file_sha = card.source.hub.sha256 if card.source.hub is not None else card.source.sha256
    assert run.model.file_sha256 == file_sha, "the card now names another model file: re-evaluate and re-export"

    suite = recorded_suite(
        run.suite_name, run.suite_version, run.dataset, run.suite_settings, run.suite_settings_hash, str(path)
    )
    current = load_suite(run.suite_name, run.dataset)
    if current.version == run.suite_version:  # the suite file of that version still says what the run recorded
        assert current.settings() == run.suite_settings
    per_example = merge_batches(values for _, values in sorted(store.stored_batches(run.id).items()))
    assert len(per_example["clean"]["label"]) == run.examples_effective == suite.num_examples
    check_metrics_follow(per_example, run.metrics, run.flags, suite, str(path))
    # The check is exact: the last bit of any number, or a flag, changed is refused.
    first = run.metrics[0]
    fields = ("name", "value", "stderr", "ci_low", "ci_high", "n")
    nudged = SimpleNamespace(**{f: getattr(first, f) for f in fields})
    nudged.value = math.nextafter(first.value, 0.0 if first.value > 0 else 1.0)
    with pytest.raises(ValidationError, match=rf"run\.metrics\.{first.name}\.value = .* does not follow"):
        check_metrics_follow(per_example, [nudged, *run.metrics[1:]], run.flags, suite, str(path))
    made_up = "a_flag_no_measurement_reads"
    with pytest.raises(ValidationError, match=rf"run\.flags has {made_up}, which the values do not give"):
        check_metrics_follow(per_example, run.metrics, [*run.flags, made_up], suite, str(path))


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
