"""The quick suite on both reference models gives the recorded golden numbers, bit for bit: a
refactor that changes a number fails here (a deliberate change bumps the suite version and
records the golden result again with ``python tests/golden_helpers.py``)."""

from __future__ import annotations

import json

import pytest
from golden_helpers import GOLDEN, compute, environment


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
