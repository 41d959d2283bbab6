"""A board's rank correlations (invarbench.site.correlations): which pairs, which groups, the text."""

from __future__ import annotations

import math

from invarbench.site.correlations import PAIRS, ModelPoint, board_correlations


def _points():
    # Five models: robust accuracy rises with path width exactly; closure falls with it exactly.
    # Three share the architecture "cnn", two "mlp" (too few for a group of their own).
    widths = [0.5, 1.0, 2.0, 3.0, 4.0]
    return [
        ModelPoint(
            f"m{i}",
            "cnn" if i < 3 else "mlp",
            {"robust_accuracy_linf": 0.1 * i, "path_width": w, "nspgd_closure": 1 - 0.2 * i},
        )
        for i, w in enumerate(widths)
    ]


def test_pairs_present_are_computed_over_all_and_within_groups_of_three():
    got = board_correlations(_points())
    keyed = {(c.x, c.y, c.group): c.result for c in got}
    assert set(keyed) == {
        ("robust_accuracy_linf", "path_width", None),
        ("robust_accuracy_linf", "path_width", "cnn"),
        ("robust_accuracy_linf", "nspgd_closure", None),
        ("robust_accuracy_linf", "nspgd_closure", "cnn"),
    }
    assert keyed["robust_accuracy_linf", "path_width", None].rho == 1.0
    assert keyed["robust_accuracy_linf", "nspgd_closure", None].rho == -1.0
    assert keyed["robust_accuracy_linf", "path_width", "cnn"].n == 3
    order = [(c.x, c.y) for c in got]
    assert order == sorted(order, key=PAIRS.index)


def test_text_says_why_there_is_no_coefficient():
    two = _points()[:2]
    (corr, *_) = board_correlations(two)
    assert math.isnan(corr.result.rho)
    assert corr.text().startswith("no coefficient (2 models")
    (full, *_) = board_correlations(_points())
    assert full.text().startswith("ρ = +1.00") and full.text().endswith("5 models")
