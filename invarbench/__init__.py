"""invarbench: a benchmark of excessive sensitivity and excessive invariance of image classifiers."""

__version__ = "0.2.0"

__all__ = ["EvaluationResult", "__version__", "evaluate_model"]


def __getattr__(name: str):  # the API loads torch only when it is used
    if name in ("evaluate_model", "EvaluationResult"):
        from invarbench import api

        return getattr(api, name)
    raise AttributeError(f"module 'invarbench' has no attribute {name!r}")
