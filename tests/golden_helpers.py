"""The golden result: per-example values, metrics and flags of the quick suite on both reference
models, recorded before a refactor so that a test can hold the refactor to bit-identical numbers.

``python tests/golden_helpers.py`` records it again (only with a suite version bump and a changelog
line: the golden numbers change only when a suite version changes). ``PREVIOUS`` keeps the result of
the suite version before, recorded on the same machine, so that a test can hold a version that only
adds a measurement to every earlier number, bit for bit."""

from __future__ import annotations

import json
import platform
import sys
import tempfile
from pathlib import Path

import torch

GOLDEN = Path(__file__).resolve().parent / "golden" / "quick_mnist5k.json"
# quick/mnist5k v4, recorded with the code of v4 on the machine that recorded v5 (human_invariance added)
PREVIOUS = Path(__file__).resolve().parent / "golden" / "quick_mnist5k_v4.json"
MODELS = ("mnist5k/lenet-standard", "mnist5k/lenet-pgd-at")


def environment() -> dict[str, str]:
    """What bit-identical float results depend on besides the code: the torch build and the CPU kernels."""
    return {
        "torch": torch.__version__,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "machine": platform.machine(),
    }


def compute() -> dict:
    """Evaluate both reference models with the quick suite on the CPU through the public runner."""
    from invarbench.cards import resolve_card
    from invarbench.evaluation import EvalOptions, evaluate
    from invarbench.store import Store

    out: dict = {"environment": environment(), "models": {}}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'golden.db'}")
        for card_id in MODELS:
            outcome = evaluate(resolve_card(card_id, None), store, EvalOptions(suite="quick", device="cpu"))
            per_example: dict[str, dict[str, list]] = {}
            for _, values in sorted(store.stored_batches(outcome.run_id).items()):
                for measurement, fields in values.items():
                    for key, vals in fields.items():
                        per_example.setdefault(measurement, {}).setdefault(key, []).extend(vals)
            out["models"][card_id] = {
                "suite": f"{outcome.suite.key} v{outcome.suite.version}",
                "flags": list(outcome.flags),
                "metrics": [[m.name, m.value, m.stderr, m.ci_low, m.ci_high, m.n] for m in outcome.metrics],
                "per_example": per_example,
            }
    return out


if __name__ == "__main__":
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(compute(), sort_keys=True) + "\n")
    print(f"recorded {GOLDEN} ({GOLDEN.stat().st_size:,} bytes)", file=sys.stderr)
