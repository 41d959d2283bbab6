"""The README's table of the reference models is generated from the published results files."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from invarbench.errors import NotFoundError, ValidationError
from invarbench.measurements import metric_specs
from invarbench.site.reference_table import END, START, main, metrics_table, reference_table, replace_block

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "leaderboard" / "results"


def test_the_readme_tables_are_the_ones_the_registry_and_the_results_files_give():
    readme = (ROOT / "README.md").read_text()
    for block in (metrics_table(), reference_table(RESULTS)):
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
    target.write_text(f"before\n{START}\nold\n{END}\nafter\n{metrics.splitlines()[0]}\nx\n{metrics.splitlines()[-1]}\n")
    assert main(["--results", str(RESULTS), "--write", str(target)]) == 0
    text = target.read_text()
    assert text.startswith("before\n") and "\nafter\n" in text and "old" not in text
    assert reference_table(RESULTS) in text
    with pytest.raises(ValidationError, match="markers"):
        replace_block("no markers here", "x")
