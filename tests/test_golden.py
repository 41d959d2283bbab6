"""The quick suite on both reference models gives the recorded golden numbers, bit for bit: a
refactor that changes a number fails here (a deliberate change bumps the suite version and
records the golden result again with ``python tests/golden_helpers.py``)."""

from __future__ import annotations

import json

import pytest
from golden_helpers import GOLDEN, PREVIOUS, compute, environment


def test_quick_suite_on_the_reference_models_is_bit_identical_to_the_golden_result():
    golden = json.loads(GOLDEN.read_text())
    if golden["environment"] != environment():
        pytest.skip(
            f"golden result recorded with {golden['environment']}, this is {environment()}: float kernels "
            "may differ; record it anew on this machine before refactoring"
        )
    now = json.loads(json.dumps(compute(), sort_keys=True))
    for card_id, expected in golden["models"].items():
        got = now["models"][card_id]
        assert got["suite"] == expected["suite"], "a suite version changed: record the golden result again"
        assert got["flags"] == expected["flags"], card_id
        assert got["metrics"] == expected["metrics"], card_id
        for measurement, fields in expected["per_example"].items():
            for key, values in fields.items():
                assert got["per_example"][measurement][key] == values, (card_id, measurement, key)
        assert sorted(got["per_example"]) == sorted(expected["per_example"])


def test_the_version_that_added_human_invariance_keeps_every_earlier_number():
    """quick/mnist5k v5 only adds human_invariance: every metric, flag and per-example value of v4
    (recorded on the same machine with the code of v4) is in v5 bit for bit, and v5 adds nothing else."""
    previous = json.loads(PREVIOUS.read_text())
    golden = json.loads(GOLDEN.read_text())
    assert previous["environment"] == golden["environment"]
    assert sorted(previous["models"]) == sorted(golden["models"])
    for card_id, before in previous["models"].items():
        now = golden["models"][card_id]
        assert (before["suite"], now["suite"]) == ("quick/mnist5k v4", "quick/mnist5k v5")
        assert now["flags"] == before["flags"], card_id
        added = [m for m in now["metrics"] if m not in before["metrics"]]
        assert [m for m in now["metrics"] if m not in added] == before["metrics"], card_id
        assert [m[0] for m in added] == ["human_agreement_relabelled", "human_agreement_unchanged"], card_id
        assert sorted(set(now["per_example"]) - set(before["per_example"])) == ["human_invariance"]
        for measurement, fields in before["per_example"].items():
            assert now["per_example"][measurement] == fields, (card_id, measurement)
