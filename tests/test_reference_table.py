"""The README's tables of the reference models and of the public boards are generated from the published
results files."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

import pytest

from invarbench.errors import NotFoundError, ValidationError
from invarbench.measurements import metric_specs
from invarbench.site.protocol import heading_anchor
from invarbench.site.reference_table import (
    BOARDS_END,
    BOARDS_START,
    END,
    MEASUREMENTS_DOC,
    START,
    boards_table,
    main,
    metrics_table,
    reference_table,
    replace_block,
    wall_time,
)
from invarbench.store.documents import content_digest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "leaderboard" / "results"
SEEDS = ROOT / "tests" / "data" / "site_seeds" / "mnist5k"  # the reference LeNets' standard v4 runs


def test_the_readme_tables_are_the_ones_the_registry_and_the_results_files_give():
    readme = (ROOT / "README.md").read_text()
    for block in (metrics_table(), reference_table(RESULTS), boards_table(RESULTS)):
        assert block in readme, "regenerate it: python -m invarbench.site.reference_table --write README.md"
    for spec in metric_specs():
        assert f"| `{spec.name}` | {spec.description} |" in readme


def test_the_table_reads_each_number_from_the_files(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    path = next((results / "mnist5k").glob("lenet-pgd-at__standard-v*.json"))
    doc = json.loads(path.read_text())
    for m in doc["metrics"]:
        if m["name"] == "clean_accuracy":
            m["value"] = 0.5
    path.write_text(json.dumps(doc))
    row = next(line for line in reference_table(results).splitlines() if line.startswith("| Clean accuracy"))
    assert row.split("|")[3].strip() == "50.0 %"


def test_stale_or_missing_results_are_refused(tmp_path):
    results = tmp_path / "results"
    shutil.copytree(RESULTS, results)
    for path in (results / "mnist5k").glob("*.json"):
        doc = json.loads(path.read_text())
        doc["run"]["suite_version"] = 1
        path.write_text(json.dumps(doc))
    with pytest.raises(ValidationError, match="re-run the reference models"):
        reference_table(results)
    with pytest.raises(NotFoundError, match="no results file"):
        reference_table(tmp_path / "empty")


def test_write_replaces_only_the_marked_block(tmp_path):
    target = tmp_path / "README.md"
    metrics = metrics_table()
    original = (
        f"before\n{START}\nold\n{END}\nafter\n{metrics.splitlines()[0]}\nx\n{metrics.splitlines()[-1]}\n"
        f"between\n{BOARDS_START}\nold boards\n{BOARDS_END}\nend\n"
    )
    target.write_text(original)
    assert main(["--results", str(RESULTS), "--write", str(target)]) == 0
    text = target.read_text()
    assert text.startswith("before\n") and "\nafter\n" in text and "old" not in text
    assert "\nbetween\n" in text and text.endswith(f"{BOARDS_END}\nend\n")
    assert reference_table(RESULTS) in text and boards_table(RESULTS) in text
    target.write_text(original.split("between")[0])  # no boards markers: refused, the file left as it was
    shutil.copytree(RESULTS / "mnist5k", tmp_path / "results" / "mnist5k")  # the reference models' files only
    with pytest.raises(ValidationError, match="boards-table:start"):
        main(["--results", str(tmp_path / "results"), "--write", str(target)])
    assert target.read_text() == original.split("between")[0]
    with pytest.raises(ValidationError, match="markers"):
        replace_block("no markers here", "x")


# --- the public boards --------------------------------------------------------------------------------------


def _copy_run(src: Path, folder: Path, name: str, *, device: str, duration_s: float) -> dict:
    """Write ``src``'s run as model ``<dataset>/<name>`` into ``folder``: the card renamed (its sha256 and the
    document's digest recomputed), a new uid, the given device and duration, no artifacts. Returns the
    document written."""
    doc = json.loads(src.read_text())
    model = doc["model"]
    old = model["card_id"]
    new = f"{model['dataset']}/{name}"
    assert f"id: {old}\n" in model["card_yaml"]
    model["card_yaml"] = model["card_yaml"].replace(f"id: {old}\n", f"id: {new}\n")
    model["card_sha256"] = hashlib.sha256(model["card_yaml"].encode()).hexdigest()
    model["card_id"] = new
    doc["run"].update(uid=str(uuid.uuid4()), device=device, duration_s=duration_s)
    doc["artifacts"] = []
    doc["content_sha256"] = content_digest(doc)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}__{doc['run']['suite_name']}-v{doc['run']['suite_version']}.json").write_text(json.dumps(doc))
    return doc


def _cells(doc: dict, names: tuple[str, ...]) -> list[str]:
    """The metric cells of ``doc``'s row as the README writes numbers: shares as percentages with one
    decimal, distances, closures and widths with three decimals."""
    values = {m["name"]: m["value"] for m in doc["metrics"]}
    return [f"{100 * values[n]:.1f} %" if "accuracy" in n or "agreement" in n else f"{values[n]:.3f}" for n in names]


def _ci(doc: dict, name: str) -> tuple[float, float]:
    return next((m["ci_low"], m["ci_high"]) for m in doc["metrics"] if m["name"] == name)


def test_the_boards_table_of_a_small_results_folder(tmp_path):
    folder = tmp_path / "results" / "mnist5k"
    v4 = {p.name.split("__")[0]: p for p in SEEDS.glob("*.json")}
    v5 = {p.name.split("__")[0]: p for p in (RESULTS / "mnist5k").glob("lenet-*__standard-v*.json")}
    # Board 1 (standard v4): two copies of the standard LeNet (the same values: tied in the ranking metric)
    # and the flagged PGD-trained LeNet, run on two devices.
    tie_a = _copy_run(v4["lenet-standard"], folder, "tie-a", device="cpu", duration_s=125.0)
    tie_b = _copy_run(v4["lenet-standard"], folder, "tie-b", device="cuda", duration_s=2880.0)
    flagged = _copy_run(v4["lenet-pgd-at"], folder, "flagged", device="cpu", duration_s=9000.0)
    # Board 2 (the newer suite version, with human agreement): one model, on one device.
    (version,) = {json.loads(p.read_text())["run"]["suite_version"] for p in v5.values()}
    assert version != 4
    alone = _copy_run(v5["lenet-standard"], folder, "alone", device="cpu", duration_s=30.0)

    # The ground truth, from the files: the flagged model's L∞ interval lies above the tied models'.
    assert flagged["run"]["flags"] == ["gradient_attack_weaker_than_search"] and tie_a["run"]["flags"] == []
    assert _ci(flagged, "robust_accuracy_linf")[0] > _ci(tie_a, "robust_accuracy_linf")[1]
    metrics = ("clean_accuracy", "robust_accuracy_linf", "robust_accuracy_l2", "median_min_l2_distance")
    metrics += ("nspgd_closure", "path_width")
    human = ("human_agreement_relabelled",)
    assert not any(m["name"] in human for m in tie_a["metrics"])
    assert any(m["name"] in human for m in alone["metrics"])

    def row(rank: int, name: str, doc: dict, names: tuple[str, ...], flags: str, time: str) -> str:
        training = doc["model"]["training_method"]
        return (
            f"| {rank} | `mnist5k/{name}` | {training} | " + " | ".join(_cells(doc, names)) + f" | {flags} | {time} |"
        )

    text = boards_table(tmp_path / "results", leave_out=())
    lines = text.splitlines()
    assert lines[0] == BOARDS_START and lines[-1] == BOARDS_END
    headings = [line for line in lines if line.startswith("### ")]
    assert headings == [
        "### `mnist5k` · standard v4, all 1,000 test images",
        f"### `mnist5k` · standard v{version}, all 1,000 test images",
    ]
    rows = [line for line in lines if line.startswith("| ") and not line.startswith(("| rank", "| ---"))]
    assert rows == [
        row(1, "flagged", flagged, metrics, "`masking?`", "2.5 h (cpu)"),
        row(2, "tie-a", tie_a, metrics, "none", "2.1 min (cpu)"),
        row(2, "tie-b", tie_b, metrics, "none", "48 min (cuda)"),
        row(1, "alone", alone, metrics + human, "none", "0.5 min"),
    ]
    headers = [line for line in lines if line.startswith("| rank")]
    assert "Human agreement (relabelled)" not in headers[0] and "Human agreement (relabelled) ↑" in headers[1]
    assert "Run on cpu, cuda (as recorded), seed 0." in text and "Run on cpu (as recorded), seed 0." in text
    assert text.count("`masking?` (`gradient_attack_weaker_than_search`)") == 1

    # A board of left-out models only (the reference models' by default) is not shown.
    without = boards_table(tmp_path / "results", leave_out=("mnist5k/alone",))
    assert f"standard v{version}" not in without and "`mnist5k/tie-a`" in without
    only_left_out = boards_table(
        tmp_path / "results", leave_out=("mnist5k/alone", "mnist5k/tie-a", "mnist5k/tie-b", "mnist5k/flagged")
    )
    assert only_left_out == f"{BOARDS_START}\nNo public board has published results yet.\n{BOARDS_END}"


def test_wall_times_and_the_correlations_link():
    assert [wall_time(s) for s in (None, 12.0, 125.0, 599.0, 2880.0, 7199.0, 9000.0)] == [
        "–",
        "0.2 min",
        "2.1 min",
        "10 min",
        "48 min",
        "2.0 h",
        "2.5 h",
    ]
    path, anchor = MEASUREMENTS_DOC.split("#")
    headings = [line.lstrip("#").strip() for line in (ROOT / path).read_text().splitlines() if line.startswith("## ")]
    assert anchor in [heading_anchor(h) for h in headings]
