"""Evaluation: runs a suite's measurements on a model and records every result in the store."""

from invarbench.evaluation.runner import EvalOptions, EvalOutcome, evaluate, resolve_device

__all__ = ["EvalOptions", "EvalOutcome", "evaluate", "resolve_device"]
