"""The suite schema and loader.

A suite fixes everything that changes a number: budgets, steps, step sizes, number of
examples, seeds. Any change to a suite file that changes numbers bumps ``version`` and adds a
``changelog`` line; the version is stored with every run.
"""

from __future__ import annotations

from importlib import resources
from typing import Literal

import pydantic
import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from invarbench.errors import NotFoundError, ValidationError
from invarbench.registry import did_you_mean


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PGDSpec(_Strict):
    eps: float = Field(gt=0)
    steps: int = Field(ge=1)
    step_size: float | None = Field(default=None, gt=0, description="default 2.5 * eps / steps")
    restarts: int = Field(default=1, ge=1)


class Measurements(_Strict):
    pgd_linf: PGDSpec | None = None


class Suite(_Strict):
    name: str
    version: int = Field(ge=1)
    dataset: str
    description: str
    changelog: list[str] = Field(min_length=1)
    num_examples: int = Field(ge=1, description="examples of the test split, taken in published order")
    seed: int = 0
    measurements: Measurements

    @model_validator(mode="after")
    def _changelog_covers_version(self) -> Suite:
        if not any(line.startswith(f"{self.version}:") for line in self.changelog):
            raise ValueError(f"changelog has no line starting with '{self.version}:' for the current version")
        return self

    @property
    def key(self) -> str:
        return f"{self.name}/{self.dataset}"


def _root():
    return resources.files("invarbench.suites")


def list_suites() -> list[Suite]:
    suites = []
    for folder in sorted(_root().iterdir(), key=lambda p: p.name):
        if folder.is_dir() and not folder.name.startswith(("_", ".")):
            for file in sorted(folder.iterdir(), key=lambda p: p.name):
                if file.name.endswith(".yaml"):
                    suites.append(load_suite(folder.name, file.name[: -len(".yaml")]))
    return suites


def load_suite(name: str, dataset: str) -> Suite:
    """Load suite ``name`` for ``dataset`` from the package's suite files."""
    file = _root().joinpath(name, f"{dataset}.yaml")
    if not file.is_file():
        names = sorted(p.name for p in _root().iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))
        if name not in names:
            raise NotFoundError(f"unknown suite '{name}'.{did_you_mean(name, names)} Known: {', '.join(names)}.")
        raise NotFoundError(f"suite '{name}' has no version for data set '{dataset}'")
    try:
        data = yaml.safe_load(file.read_text())
        suite = Suite.model_validate(data)
    except (yaml.YAMLError, pydantic.ValidationError) as exc:
        raise ValidationError(f"invalid suite file {name}/{dataset}.yaml: {exc}") from None
    if suite.name != name or suite.dataset != dataset:
        raise ValidationError(f"suite file {name}/{dataset}.yaml declares {suite.name}/{suite.dataset}")
    return suite
