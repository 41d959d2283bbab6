"""Suites: the shipped files, their versioning, the include mechanism, and `invarbench suites`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from invarbench.cli.app import app
from invarbench.errors import NotFoundError, ValidationError
from invarbench.measurements import MEASUREMENTS
from invarbench.suites import list_suites, load_suite
from invarbench.suites import schema as suite_schema
from invarbench.suites.schema import Suite

HASHES = Path(__file__).with_name("suite_hashes.json")
DATASETS = ("cifar10", "cifar100", "mnist", "mnist5k")
runner = CliRunner()


def test_every_suite_exists_for_every_data_set():
    keys = {s.key for s in list_suites()}
    assert keys == {f"{name}/{d}" for name in ("standard", "quick") for d in DATASETS}


def test_suite_settings_are_recorded_per_version():
    """Changing what a suite measures without a new version fails here.

    After a deliberate change: bump ``version``, add a changelog line starting with the new
    version, and add the new hash to tests/suite_hashes.json (keep the old ones).
    """
    recorded = json.loads(HASHES.read_text())
    problems = []
    for s in list_suites():
        versions = recorded.get(s.key, {})
        digest = s.settings_hash()
        if str(s.version) not in versions:
            problems.append(f'{s.key} v{s.version} is not recorded: add "{s.version}": "{digest}" under "{s.key}"')
        elif versions[str(s.version)] != digest:
            problems.append(
                f"{s.key} v{s.version} changed its settings without a new version "
                f"(now {digest}): bump version, add a changelog line, record the new hash"
            )
        # An older version's settings can never come back under a newer number silently.
        for old, old_digest in versions.items():
            if int(old) != s.version and old_digest == digest:
                problems.append(f"{s.key} v{s.version} has the same settings as its v{old}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("name", ["standard", "quick"])
def test_budgets(name):
    cifar = [load_suite(name, d).measurements for d in ("cifar10", "cifar100")]
    mnist = [load_suite(name, d).measurements for d in ("mnist", "mnist5k")]
    for m in cifar:
        assert m.pgd_linf.eps == 8 / 255 and m.pgd_l2.eps == 0.5
        assert m.path_width.radii == (5, 10, 15, 20, 25, 30)  # the CIFAR radii, for 3x32x32
    for m in mnist:
        assert m.pgd_linf.eps == 0.3 and m.pgd_l2.eps == 2.0
        # The CIFAR radii scaled by sqrt(784 / 3072): the same per-pixel RMS change.
        assert m.path_width.radii == pytest.approx([r * 0.505 for r in (5, 10, 15, 20, 25, 30)], rel=0.01)


@pytest.mark.parametrize("dataset", DATASETS)
def test_quick_runs_every_measurement_with_less_work(dataset):
    std, quick = load_suite("standard", dataset), load_suite("quick", dataset)
    s, q = std.measurements, quick.measurements
    digits_only = set() if dataset.startswith("mnist") else {"human_invariance"}  # its probes are MNIST digits
    assert set(q) == set(s) == {m.name for m in MEASUREMENTS.in_order()} - {"clean", *digits_only}
    assert q.get("human_invariance") == s.get("human_invariance")  # a fixed probe set: the same 350 images
    assert quick.num_examples < std.num_examples
    assert q.pgd_linf.steps < s.pgd_linf.steps and q.pgd_l2.steps < s.pgd_l2.steps
    assert q.pgd_linf.eps == s.pgd_linf.eps and q.pgd_l2.eps == s.pgd_l2.eps
    assert q.min_norm.steps < s.min_norm.steps
    assert q.nspgd.pairs.num_pairs < s.nspgd.pairs.num_pairs and q.nspgd.max_iter <= s.nspgd.max_iter
    assert q.path_width.directions < s.path_width.directions
    assert q.path_width.radii == s.path_width.radii


def test_standard_defaults_follow_the_seed():
    for dataset in DATASETS:
        m = load_suite("standard", dataset).measurements
        assert (m.nspgd.eta, m.nspgd.delta, m.nspgd.max_iter) == (0.05, 0.05, 100)
        assert m.path_width.directions == 256 and m.path_width.points == tuple(range(0, 60, 6))
        assert (m.path_width.q_lo, m.path_width.q_hi) == (0.05, 0.95)


def test_cifar100_is_the_cifar10_protocol():
    assert load_suite("standard", "cifar100").settings() == {
        **load_suite("standard", "cifar10").settings(),
        "dataset": "cifar100",
    }


# --- the include mechanism and validation, on suite files in a temporary folder -------------------
@pytest.fixture
def suite_root(tmp_path, monkeypatch):
    monkeypatch.setattr(suite_schema, "_root", lambda: tmp_path)

    def write(name: str, dataset: str, text: str) -> None:
        (tmp_path / name).mkdir(exist_ok=True)
        (tmp_path / name / f"{dataset}.yaml").write_text(text)

    return write


BASE = """
name: base
version: 1
dataset: toy
description: a base
changelog: ["1: first"]
num_examples: 100
measurements:
  pgd_linf: {eps: 8/255, steps: 10}
  nspgd: {eta: 0.05, delta: 0.05, max_iter: 20, pairs: {num_pairs: 10}}
  path_width: {points: [0, 5], directions: 16, radii: [1, 2]}
"""


def test_include_merges_mappings_and_replaces_the_rest(suite_root):
    suite_root("base", "toy", BASE)
    suite_root(
        "child",
        "toy",
        """
name: child
version: 3
dataset: toy
description: a child
changelog: ["3: fewer pairs"]
include: base/toy
measurements:
  nspgd: {pairs: {num_pairs: 4}}
  path_width: {points: [0]}
""",
    )
    child = load_suite("child", "toy")
    assert child.version == 3 and child.description == "a child" and child.num_examples == 100
    assert child.measurements.pgd_linf.eps == pytest.approx(8 / 255)
    assert child.measurements.nspgd.pairs.num_pairs == 4 and child.measurements.nspgd.max_iter == 20
    assert child.measurements.nspgd.pairs.rule == "seeded_other_class"
    assert child.measurements.path_width.points == (0,) and child.measurements.path_width.radii == (1, 2)
    # The resolved YAML is a complete suite file with no include left.
    text = child.to_yaml()
    assert "include" not in text and "radii: [1.0, 2.0]" in text
    assert Suite.model_validate(yaml.safe_load(text)) == child.model_copy(update={"include": None})


def test_null_removes_an_inherited_measurement(suite_root):
    suite_root("base", "toy", BASE)
    suite_root(
        "lean",
        "toy",
        """
name: lean
version: 1
dataset: toy
description: no invariance
changelog: ["1: first"]
include: base/toy
measurements: {nspgd: null, path_width: null}
""",
    )
    m = load_suite("lean", "toy").measurements
    assert m.nspgd is None and m.path_width is None and m.pgd_linf is not None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BASE.replace("version: 1", "version: 2"), "changelog has no line starting with '2:'"),
        (BASE.replace("steps: 10}", "steps: 10, step: 1}"), "measurements.pgd_linf.step: unknown setting"),
        (BASE.replace("8/255", "8/0"), "'8/0' is not a number or a fraction such as 8/255"),
        (BASE.replace("points: [0, 5]", "points: [0, 25]"), "path_width points [25] are not below nspgd max_iter 20"),
        (BASE.replace("points: [0, 5]", "points: [5, 0]"), "path_width needs points: increasing iteration numbers"),
        (BASE.replace("radii: [1, 2]", "radii: [2, 1]"), "radii must be increasing positive numbers"),
        (
            BASE.replace("  nspgd: {eta: 0.05, delta: 0.05, max_iter: 20, pairs: {num_pairs: 10}}\n", ""),
            "measurements.path_width needs nspgd in the suite",
        ),
        (BASE.replace("num_pairs: 10", "num_pairs: 10, rule: random"), "measurements.nspgd.pairs.rule"),
        (BASE.replace("name: base", "name: other"), "suite file base/toy.yaml declares other/toy"),
        ("- just\n- a list\n", "invalid suite file base/toy.yaml: expected a mapping of settings"),
    ],
)
def test_invalid_suite_files(suite_root, text, message):
    suite_root("base", "toy", text)
    with pytest.raises(ValidationError) as exc:
        load_suite("base", "toy")
    assert message in str(exc.value)


def test_include_loops_and_bad_includes(suite_root):
    suite_root("a", "toy", BASE.replace("name: base", "name: a") + "include: b/toy\n")
    suite_root("b", "toy", BASE.replace("name: base", "name: b") + "include: a/toy\n")
    with pytest.raises(ValidationError, match=r"include loop a/toy -> b/toy -> a/toy"):
        load_suite("a", "toy")
    suite_root("c", "toy", BASE.replace("name: base", "name: c") + "include: nowhere\n")
    with pytest.raises(ValidationError, match="include must name '<suite>/<dataset>', got 'nowhere'"):
        load_suite("c", "toy")
    suite_root("d", "toy", BASE.replace("name: base", "name: d") + "include: a/cifar\n")
    with pytest.raises(NotFoundError, match="suite 'a' has no version for data set 'cifar'"):
        load_suite("d", "toy")


def test_unknown_names_suggest_the_closest():
    with pytest.raises(
        NotFoundError, match=r"unknown suite 'standrd'. Did you mean 'standard'\? Known: quick, standard."
    ):
        load_suite("standrd", "mnist")
    with pytest.raises(NotFoundError, match=r"no version for data set 'cifar'. Did you mean 'cifar10'\?"):
        load_suite("standard", "cifar")


def test_settings_hash_ignores_prose_but_not_numbers():
    s = load_suite("standard", "mnist5k")
    reworded = s.model_copy(update={"description": "other words", "changelog": ["2: x"]})
    assert reworded.settings_hash() == s.settings_hash()
    changed = s.model_copy(update={"num_examples": 999})
    assert changed.settings_hash() != s.settings_hash()


# --- CLI ---------------------------------------------------------------------------------------------
def test_cli_suites_list():
    result = runner.invoke(app, ["suites", "list"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    rows = [line for line in result.output.splitlines() if "│" in line]
    assert len(rows) == 8
    assert any(
        line.split("│")[1:4] == [" standard ", " mnist5k  ", f"{load_suite('standard', 'mnist5k').version:>8} "]
        for line in rows
    )


def test_cli_suites_show_prints_the_resolved_yaml():
    result = runner.invoke(app, ["suites", "show", "quick", "--dataset", "cifar100"])
    assert result.exit_code == 0, result.output
    shown = Suite.model_validate(yaml.safe_load(result.output))
    assert shown == load_suite("quick", "cifar100").model_copy(update={"include": None})
    assert "changelog:" in result.output and "eps: 0.03137254901960784" in result.output


def test_cli_suites_show_every_data_set():
    result = runner.invoke(app, ["suites", "show", "standard"])
    assert result.exit_code == 0
    docs = list(yaml.safe_load_all(result.output))
    assert [d["dataset"] for d in docs] == list(DATASETS)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["suites", "show", "quik"], "Error: unknown suite 'quik'. Did you mean 'quick'? Known: quick, standard.\n"),
        (
            ["suites", "show", "quick", "--dataset", "imagenet"],
            "Error: suite 'quick' has no version for data set 'imagenet'. It has: cifar10, cifar100, mnist, mnist5k.\n",
        ),
    ],
)
def test_cli_suites_errors(args, message):
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    assert result.stderr == message
