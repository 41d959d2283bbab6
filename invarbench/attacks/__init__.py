"""Attacks and measurements: pure functions over tensors (no I/O, no printing).

Each takes the model per call, holds its hyperparameters in a small frozen dataclass, and
reports progress only through an optional callback.
"""

from invarbench.attacks.pgd import PGDConfig, PGDResult, pgd_attack

__all__ = ["PGDConfig", "PGDResult", "pgd_attack"]
