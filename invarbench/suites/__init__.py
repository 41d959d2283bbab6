"""Evaluation suites: versioned YAML data (``<suite>/<dataset>.yaml``) validated by a typed schema."""

from invarbench.suites.schema import Suite, list_suites, load_suite

__all__ = ["Suite", "list_suites", "load_suite"]
