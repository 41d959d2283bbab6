"""Evaluation: runs a suite's measurements on a model and records every result in the store."""

from invarbench.evaluation.options import EvalOptions, resolve_device
from invarbench.evaluation.runner import EvalOutcome, evaluate

__all__ = ["EvalOptions", "EvalOutcome", "evaluate", "resolve_device"]
