"""The protocol in plain words (invarbench/site/protocol.py): every packaged suite's ε, steps and pairs appear
in its lines, read independently from the suite files; every link points at a heading that exists in docs/."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path

import pytest
import yaml

from invarbench.data.digests import EXPECTED_DIGESTS
from invarbench.site.protocol import (
    DOCS_URL,
    REPOSITORY_URL,
    heading_anchor,
    method_docs,
    number,
    protocol_lines,
    protocol_summary,
)
from invarbench.suites import list_suites, load_suite

ROOT = Path(__file__).resolve().parents[1]
PUBLISHED_V4 = sorted((ROOT / "leaderboard" / "results").glob("*/*__standard-v4.json"))


def _text(lines) -> str:
    return "\n".join(f"{line.topic}: {line.text}" for line in lines)


def _line(lines, topic: str) -> str:
    found = [line.text for line in lines if line.topic == topic]
    assert len(found) == 1, f"{topic}: {[line.topic for line in lines]}"
    return found[0]


def _raw(name: str, dataset: str) -> dict:
    """The suite file's own measurements, includes merged by hand (independent of the suite loader)."""
    path = ROOT / "invarbench" / "suites" / name / f"{dataset}.yaml"
    data = yaml.safe_load(path.read_text())
    if "include" in data:
        base = _raw(*data["include"].split("/"))
        merged = copy.deepcopy(base["measurements"])
        for key, value in (data.get("measurements") or {}).items():
            if isinstance(value, dict):
                for k, v in value.items():
                    if isinstance(v, dict):
                        merged[key].setdefault(k, {}).update(v)
                    else:
                        merged[key][k] = v
            else:
                merged[key] = value
        data = {**base, **data, "measurements": merged}
    return data


def _eps_text(raw) -> str:
    """How a reader writes an ε of a suite file: '8/255' stays so, 0.3 stays 0.3, 2.0 is 2."""
    if isinstance(raw, str):
        return raw
    return f"{raw:g}"


@pytest.mark.parametrize("suite", list_suites(), ids=lambda s: f"{s.name}-{s.dataset}")
def test_every_suite_states_its_budget_steps_and_pairs(suite) -> None:
    raw = _raw(suite.name, suite.dataset)
    m = raw["measurements"]
    lines = protocol_lines(suite.settings())
    n = raw.get("num_examples", 0)
    data = _line(lines, "Data")
    assert f"{n:,} images" in data or f"{n:,} image" in data
    expected = EXPECTED_DIGESTS.get(suite.dataset, {}).get(suite.num_examples)
    if expected:
        assert expected in data
    for norm, topic in (("pgd_linf", "L∞ robust accuracy"), ("pgd_l2", "L2 robust accuracy")):
        if norm not in m:
            continue
        text = _line(lines, topic)
        assert f"ε = {_eps_text(m[norm]['eps'])}" in text
        assert f"PGD: {m[norm]['steps']} steps" in text
        if m[norm].get("apgd"):
            assert f"APGD-CE ({m[norm]['apgd']['steps']} steps" in text
            assert f"each of the {m[norm]['apgd']['targets']} most likely other classes" in text
            assert "APGD-T" in text
    if "nspgd" in m:
        text = _line(lines, "NSPGD")
        pairs = min(m["nspgd"]["pairs"]["num_pairs"], n)
        assert f"first {pairs:,} images" in text
        assert f"η = {m['nspgd']['eta']:g}" in text and f"δ = {m['nspgd']['delta']:g}" in text
        assert f"at most {m['nspgd']['max_iter']} steps" in text
    if "path_width" in m:
        text = _line(lines, "Path width")
        pw = m["path_width"]
        assert f"first {pw['max_pairs']} pairs" in text
        assert f"{pw['directions']} random directions" in text
        assert "radii " + ", ".join(f"{float(r):g}" for r in pw["radii"]) in text
    if "min_norm" in m:
        assert f"FMN (the fast minimum-norm attack, {m['min_norm']['steps']} steps)" in _line(
            lines, "Minimal L2 distance"
        )
    if "ece" in m:
        assert f"{m['ece']['bins']} bins" in _line(lines, "Calibration")
    if "human_invariance" in m:
        text = _line(lines, "Human-judged invariance")
        assert all(s in text for s in m["human_invariance"]["sets"])


@pytest.mark.parametrize("suite", list_suites(), ids=lambda s: f"{s.name}-{s.dataset}")
def test_the_one_line_summary_names_the_images_the_budgets_and_every_measurement(suite) -> None:
    """A board of a suite version without a registered description opens with this line instead."""
    raw = _raw(suite.name, suite.dataset)
    summary = protocol_summary(suite.settings())
    assert f"{raw['num_examples']:,} images of the " in summary and f"{suite.dataset} test split: " in summary
    assert "digest" not in summary and "\n" not in summary and len(summary) < 300
    for norm, name in (("pgd_linf", "L∞"), ("pgd_l2", "L2")):
        if norm in raw["measurements"]:
            assert f"{name} robust accuracy (ε = {_eps_text(raw['measurements'][norm]['eps'])})" in summary
    topics = [line.topic for line in protocol_lines(suite.settings())[1:]]
    assert summary.count(", ") == len(topics) - 1 and summary.endswith(f"{topics[-1].lower()}.")


def test_a_changed_setting_changes_the_words() -> None:
    settings = load_suite("standard", "mnist").settings()
    changed = copy.deepcopy(settings)
    changed["measurements"]["pgd_linf"]["eps"] = 0.1
    changed["measurements"]["pgd_linf"]["apgd"] = None
    changed["measurements"]["nspgd"]["pairs"]["num_pairs"] = 7
    before, after = protocol_lines(settings), protocol_lines(changed)
    assert "ε = 0.3" in _line(before, "L∞ robust accuracy") and "ε = 0.1" in _line(after, "L∞ robust accuracy")
    assert "APGD-CE" not in _line(after, "L∞ robust accuracy") and "PGD alone" in _line(after, "L∞ robust accuracy")
    assert "first 7 images" in _line(after, "NSPGD")


def test_the_recorded_digest_wins_and_an_unknown_size_has_none() -> None:
    settings = load_suite("standard", "cifar10").settings()
    assert "v1:abc" in _line(protocol_lines(settings, digest="v1:abc"), "Data")
    odd = {**settings, "num_examples": 321}
    data = _line(protocol_lines(odd), "Data")
    assert "first 321 images of the 10,000-image cifar10 test split" in data
    assert "digest" not in data


def test_the_first_images_say_why() -> None:
    data = _line(protocol_lines(load_suite("standard", "cifar10").settings()), "Data")
    assert "first 1,000 images of the 10,000-image cifar10 test split" in data
    # What the published runs took: the figures in the line follow from their files.
    runs = {p.parent.name + "/" + p.name.split("__")[0]: json.loads(p.read_text())["run"] for p in PUBLISHED_V4}
    mnist = sorted(r["duration_s"] for k, r in runs.items() if k.startswith("mnist/") and r["device"] == "cpu")
    assert len(mnist) == 11 and round(mnist[0]) == 12 and round(mnist[-1] / 60) == 99
    assert sum(d < 240 for d in mnist) == 7 and "from 12 s to 99 minutes each (7 of 11 under 4 minutes)" in data
    resnet20, resnet56 = runs["cifar10/akamaster-resnet20"], runs["cifar10/akamaster-resnet56"]
    assert resnet20["device"] == "cpu" and round(resnet20["duration_s"] / 60) == 60 and "ResNet-20 60 minutes" in data
    assert resnet56["device"].startswith("cuda:NVIDIA H100") and resnet56["duration_s"] < 60
    assert "on one H100 GPU the ResNet-56 took under a minute" in data and "on a 2-core CPU" in data
    whole = _line(protocol_lines(load_suite("standard", "mnist5k").settings()), "Data")
    assert "all 1,000 images of the mnist5k test split" in whole and "2-core CPU" not in whole


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (8 / 255, "8/255"),
        (2 / 255, "2/255"),
        (0.5 / 255, "0.5/255"),
        (0.3, "0.3"),
        (2.0, "2"),
        (0.2, "0.2"),
        (1000, "1,000"),
        (0.125, "0.125"),
    ],
)
def test_numbers_read_as_written(value, text) -> None:
    assert number(value) == text
    if "/" in text:  # the fraction is the value
        assert abs(float(text.removesuffix("/255")) / 255 - value) < 1e-15


def _anchors(page: str) -> set[str]:
    text = (ROOT / "docs" / page).read_text(encoding="utf-8")
    return {heading_anchor(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.M)}


def test_every_link_points_at_a_heading_of_the_docs() -> None:
    assert heading_anchor("1.1 PGD") == "11-pgd"
    assert heading_anchor("5. Clean accuracy and calibration") == "5-clean-accuracy-and-calibration"
    assert {"data", "checks", "statistics", "pgd_linf", "nspgd", "human_invariance"} <= set(method_docs())
    for page, heading in method_docs().values():
        assert heading_anchor(heading) in _anchors(page), f"docs/{page} has no heading {heading!r}"
    links = [line.link for s in list_suites() for line in protocol_lines(s.settings())]
    assert links and all(link is None or link.startswith(DOCS_URL + "/") for link in links)
    assert DOCS_URL.startswith(REPOSITORY_URL) and REPOSITORY_URL.startswith("https://")
    for link in filter(None, links):
        page, anchor = link.removeprefix(DOCS_URL + "/").split("#")
        assert anchor in _anchors(page)


def test_a_measurement_without_words_gets_its_settings() -> None:
    settings = {"dataset": "mnist", "num_examples": 10, "measurements": {"my_probe": {"k": 3}}}
    lines = protocol_lines(settings)
    assert [line.topic for line in lines] == ["Data", "my_probe"]
    assert "k = 3" in lines[1].text
