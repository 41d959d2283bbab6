"""Attacks and measurements: pure functions over tensors (no I/O, no printing).

Each takes the model per call, holds its hyperparameters in a small frozen dataclass, and
reports progress only through an optional callback. docs/measurements.md states every
protocol and default: §1.1 PGD (``pgd``) and APGD (``apgd``) with
their shared loop and result type (``loop``), §1.2 the minimal L2 distance (``minnorm``), §2 NSPGD
(``nspgd``), §3 path widths (``pathwidth``), §4 reliability checks (``checks``); its References
list the papers.
"""

from invarbench.attacks._tensors import check_finite_logits
from invarbench.attacks.apgd import APGDConfig, apgd_attack
from invarbench.attacks.checks import (
    FLAG_NAMES,
    ReliabilityConfig,
    ReliabilityReport,
    reliability_flags,
    reliability_report,
)
from invarbench.attacks.loop import AttackResult, Norm
from invarbench.attacks.minnorm import (
    BoundarySearchResult,
    MinNormConfig,
    MinNormResult,
    boundary_search_l2,
    min_l2_distance,
)
from invarbench.attacks.nspgd import NSPGDConfig, NSPGDResult, nspgd
from invarbench.attacks.pathwidth import PathWidthConfig, PathWidthResult, path_widths, width_from_tube
from invarbench.attacks.pgd import PGDConfig, pgd_attack

__all__ = [
    "APGDConfig",
    "AttackResult",
    "FLAG_NAMES",
    "BoundarySearchResult",
    "MinNormConfig",
    "MinNormResult",
    "Norm",
    "NSPGDConfig",
    "NSPGDResult",
    "PGDConfig",
    "PathWidthConfig",
    "PathWidthResult",
    "ReliabilityConfig",
    "ReliabilityReport",
    "apgd_attack",
    "boundary_search_l2",
    "check_finite_logits",
    "min_l2_distance",
    "nspgd",
    "path_widths",
    "pgd_attack",
    "reliability_flags",
    "reliability_report",
    "width_from_tube",
]
