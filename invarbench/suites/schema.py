"""The suite schema and loader.

A suite fixes everything that changes a number: budgets, steps, step sizes, number of
examples, seeds, how (source, target) pairs are chosen, radii and directions. Any change to a
suite file that changes numbers bumps ``version`` and adds a ``changelog`` line; the version is
stored with every run (``tests/suite_hashes.json`` records the settings of every released
version, and a test fails when they change without a new version).

Suite files live in ``invarbench/suites/<suite>/<dataset>.yaml``. A file may start from
another suite file with ``include: <suite>/<dataset>`` and override a few lines: mappings are
merged key by key, anything else (numbers, lists) is replaced, and ``null`` removes a
measurement. ``name``, ``dataset``, ``version``, ``description`` and ``changelog`` are never
inherited: every file states its own.
"""

from __future__ import annotations

import hashlib
import json
from fractions import Fraction
from importlib import resources
from typing import Annotated, Any, Literal

import pydantic
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from invarbench.errors import NotFoundError, ValidationError
from invarbench.registry import did_you_mean

# Keys that a file states itself and never takes from the file it includes.
_OWN_KEYS = ("name", "dataset", "version", "description", "changelog")
_MAX_INCLUDE_DEPTH = 8


def _fraction(value: Any) -> Any:
    """Budgets may be written as fractions (``8/255``): exact in the file, a float here."""
    if isinstance(value, str) and value.count("/") == 1:
        num, den = value.split("/")
        try:
            return float(Fraction(num.strip()) / Fraction(den.strip()))
        except (ValueError, ZeroDivisionError):
            pass
        raise ValueError(f"'{value}' is not a number or a fraction such as 8/255")
    return value


Number = Annotated[float, BeforeValidator(_fraction)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PGDSpec(_Strict):
    """PGD within an ``eps`` ball (METHODS.md §1)."""

    eps: Number = Field(gt=0)
    steps: int = Field(ge=1)
    step_size: Number | None = Field(default=None, gt=0, description="default 2.5 * eps / steps")
    restarts: int = Field(default=1, ge=1)


class MinNormSpec(_Strict):
    """The minimal L2 adversarial distance per example: FMN-L2 then a bisection (METHODS.md §1)."""

    method: Literal["fmn"] = "fmn"
    steps: int = Field(ge=1)
    gamma: float = Field(default=0.05, gt=0, lt=1, description="initial factor of the norm-budget update")
    gamma_final: float = Field(default=0.001, gt=0, lt=1)
    alpha_init: float = Field(default=1.0, gt=0, description="initial L2 step size")
    alpha_final: float | None = Field(default=None, gt=0, description="final step size; default alpha_init / 100")
    refine_steps: int = Field(default=20, ge=0, description="bisection steps toward the decision boundary")
    search_endpoints: int = Field(
        default=4, ge=0,
        description="nearest evaluated images of other classes whose segments the gradient-free boundary search "
        "bisects (0: FMN alone)",
    )

    @model_validator(mode="after")
    def _gamma_decays(self) -> MinNormSpec:
        if self.gamma_final > self.gamma:
            raise ValueError("gamma_final must not exceed gamma")
        return self


class PairSpec(_Strict):
    """How NSPGD's (source, target) pairs are chosen; they depend on the suite and data only.

    Sources are the first ``num_pairs`` examples of the evaluated data in published order.
    ``seeded_other_class``: each source's target is drawn uniformly from the examples of the
    evaluated data whose label differs, with a generator seeded by (suite seed, source index);
    ``next_other_class``: the target is the next example (cyclically) whose label differs.
    """

    rule: Literal["seeded_other_class", "next_other_class"] = "seeded_other_class"
    num_pairs: int = Field(ge=1)


class NSPGDSpec(_Strict):
    """Null-space projected gradient descent from a source toward a target (METHODS.md §2)."""

    eta: float = Field(gt=0, le=1, description="fraction of the remaining distance per step")
    delta: float = Field(gt=0, le=1, description="tolerated drop of the source-class confidence")
    max_iter: int = Field(ge=1)
    pairs: PairSpec


class PathWidthSpec(_Strict):
    """Equi-confidence path widths at NSPGD path points (METHODS.md §3)."""

    points: tuple[int, ...] = Field(min_length=1, description="NSPGD iterations whose iterate is a path point")
    directions: int = Field(ge=2, description="random directions normal to the step, per point")
    radii: tuple[Number, ...] = Field(min_length=1, description="L2 radii in [0, 1] pixel space, increasing")
    q_lo: float = Field(default=0.05, gt=0, lt=1)
    q_hi: float = Field(default=0.95, gt=0, lt=1)
    width_fraction: float = Field(default=0.5, gt=0, lt=1, description="the share of p_c(x) that q_lo must keep")
    max_pairs: int | None = Field(default=None, ge=1, description="measure the first N pairs only; null: all")

    @field_validator("points")
    @classmethod
    def _increasing_points(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(p < 0 for p in v) or any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError("points must be increasing iteration numbers >= 0")
        return v

    @field_validator("radii")
    @classmethod
    def _increasing_radii(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if any(r <= 0 for r in v) or any(b <= a for a, b in zip(v, v[1:])):
            raise ValueError("radii must be increasing positive numbers")
        return v

    @model_validator(mode="after")
    def _quantiles_ordered(self) -> PathWidthSpec:
        if self.q_lo >= self.q_hi:
            raise ValueError("q_lo must be below q_hi")
        return self


class ECESpec(_Strict):
    """Clean expected calibration error with equal-width confidence bins."""

    bins: int = Field(default=15, ge=1)


class ChecksSpec(_Strict):
    """Reliability checks (METHODS.md §4) on the first ``examples`` examples; thresholds as in
    :class:`invarbench.attacks.checks.ReliabilityConfig`."""

    examples: int = Field(default=100, ge=1)
    randomness_atol: float = Field(default=1e-5, ge=0)
    randomness_rtol: float = Field(default=1e-4, ge=0)
    probability_atol: float = Field(default=1e-3, ge=0)
    probability_fraction: float = Field(default=0.9, ge=0, le=1)
    zero_gradient_fraction: float = Field(default=0.1, ge=0, le=1)
    nan_gradient_fraction: float = Field(default=0.0, ge=0, le=1)
    batch_atol: float = Field(default=1e-4, ge=0)
    batch_rtol: float = Field(default=1e-3, ge=0)
    search_beats_gradient_fraction: float = Field(
        default=0.1, ge=0, le=1,
        description="the share of correctly classified examples on which the gradient-free boundary search finds "
        "a smaller adversarial distance than FMN above which gradient_attack_weaker_than_search is raised",
    )


class Measurements(_Strict):
    """Clean accuracy is always measured; every other measurement runs when it is present."""

    pgd_linf: PGDSpec | None = None
    pgd_l2: PGDSpec | None = None
    min_norm: MinNormSpec | None = None
    nspgd: NSPGDSpec | None = None
    path_width: PathWidthSpec | None = None
    ece: ECESpec | None = None

    @model_validator(mode="after")
    def _path_width_needs_nspgd(self) -> Measurements:
        if self.path_width is not None:
            if self.nspgd is None:
                raise ValueError("path_width measures along NSPGD paths: it needs an nspgd entry")
            late = [p for p in self.path_width.points if p >= self.nspgd.max_iter]
            if late:
                raise ValueError(f"path_width points {late} are not below nspgd max_iter {self.nspgd.max_iter}")
        return self


class Suite(_Strict):
    name: str
    version: int = Field(ge=1)
    dataset: str
    description: str
    changelog: list[str] = Field(min_length=1)
    include: str | None = Field(default=None, description="the <suite>/<dataset> file this one starts from")
    num_examples: int = Field(ge=1, description="examples of the test split, taken in published order")
    seed: int = 0
    checks: ChecksSpec = ChecksSpec()
    measurements: Measurements

    @model_validator(mode="after")
    def _changelog_covers_version(self) -> Suite:
        if not any(line.startswith(f"{self.version}:") for line in self.changelog):
            raise ValueError(f"changelog has no line starting with '{self.version}:' for the current version")
        return self

    @property
    def key(self) -> str:
        return f"{self.name}/{self.dataset}"

    def settings(self) -> dict[str, Any]:
        """Everything that changes a number (not the description, changelog or include line)."""
        return self.model_dump(mode="json", exclude={"name", "version", "description", "changelog", "include"})

    def settings_hash(self) -> str:
        """A stable digest of :meth:`settings`; a change needs a new version."""
        text = json.dumps(self.settings(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_yaml(self) -> str:
        """The resolved suite (includes applied) as YAML, in the files' key order."""
        data = self.model_dump(mode="json", exclude={"include"})
        return yaml.dump(data, Dumper=_FlowListDumper, sort_keys=False, allow_unicode=True, width=100)


class _FlowListDumper(yaml.SafeDumper):
    """Writes lists of numbers on one line (``radii: [5.0, 10.0]``), as the suite files do."""


def _represent_list(dumper: yaml.SafeDumper, data: list) -> yaml.Node:
    flow = all(isinstance(v, (int, float)) for v in data)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", data, flow_style=flow)


_FlowListDumper.add_representer(list, _represent_list)


def _root():
    return resources.files("invarbench.suites")


def suite_names() -> list[str]:
    return sorted(p.name for p in _root().iterdir() if p.is_dir() and not p.name.startswith(("_", ".")))


def suite_datasets(name: str) -> list[str]:
    folder = _root().joinpath(name)
    if not folder.is_dir():
        return []
    return sorted(f.name[: -len(".yaml")] for f in folder.iterdir() if f.name.endswith(".yaml"))


def list_suites() -> list[Suite]:
    return [load_suite(name, dataset) for name in suite_names() for dataset in suite_datasets(name)]


def _merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Mappings merge key by key; anything else in ``override`` replaces ``base``."""
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _read_raw(name: str, dataset: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """The file's mapping with its includes applied (not validated yet)."""
    key = f"{name}/{dataset}"
    file = _root().joinpath(name, f"{dataset}.yaml")
    if not file.is_file():
        names = suite_names()
        if name not in names:
            raise NotFoundError(f"unknown suite '{name}'.{did_you_mean(name, names)} Known: {', '.join(names)}.")
        known = suite_datasets(name)
        raise NotFoundError(
            f"suite '{name}' has no version for data set '{dataset}'.{did_you_mean(dataset, known)} "
            f"It has: {', '.join(known)}."
        )
    try:
        data = yaml.safe_load(file.read_text())
    except yaml.YAMLError as exc:
        raise ValidationError(f"invalid suite file {key}.yaml: {exc}") from None
    if not isinstance(data, dict):
        raise ValidationError(f"invalid suite file {key}.yaml: expected a mapping of settings")
    parent = data.get("include")
    if parent is None:
        return data
    if not isinstance(parent, str) or parent.count("/") != 1:
        raise ValidationError(f"invalid suite file {key}.yaml: include must name '<suite>/<dataset>', got {parent!r}")
    if parent in chain or parent == key or len(chain) >= _MAX_INCLUDE_DEPTH:
        raise ValidationError(f"suite file {key}.yaml: include loop {' -> '.join((*chain, key, parent))}")
    base = _read_raw(*parent.split("/"), chain=(*chain, key))
    base = {k: v for k, v in base.items() if k not in (*_OWN_KEYS, "include")}
    return _merge(base, data)


def load_suite(name: str, dataset: str) -> Suite:
    """Load suite ``name`` for ``dataset`` from the package's suite files, includes resolved."""
    data = _read_raw(name, dataset)
    try:
        suite = Suite.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(file)'}: {err['msg']}" for err in exc.errors()
        )
        raise ValidationError(f"invalid suite file {name}/{dataset}.yaml: {problems}") from None
    if suite.name != name or suite.dataset != dataset:
        raise ValidationError(f"suite file {name}/{dataset}.yaml declares {suite.name}/{suite.dataset}")
    return suite
