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

import dataclasses
import functools
import hashlib
import json
import re
from collections.abc import Iterator, Mapping
from fractions import Fraction
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

import pydantic
import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from invarbench.attacks.checks import ReliabilityConfig
from invarbench.errors import NotFoundError, ValidationError
from invarbench.measurements import MEASUREMENTS, load_plugins, suite_fields
from invarbench.registry import did_you_mean

# Keys that a file states itself and never takes from the file it includes.
_OWN_KEYS = ("name", "dataset", "version", "description", "changelog")
_MAX_INCLUDE_DEPTH = 8


_FRACTION = re.compile(r"^\s*-?\d+(\.\d*)?\s*/\s*\d+(\.\d*)?\s*$")


def _fractions(value: Any) -> Any:
    """Budgets may be written as fractions (``8/255``): exact in the file, a float here."""
    if isinstance(value, dict):
        return {k: _fractions(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_fractions(v) for v in value]
    if isinstance(value, str) and _FRACTION.match(value):
        num, den = value.split("/")
        if Fraction(den.strip()) == 0:
            raise ValueError(f"'{value}' is not a number or a fraction such as 8/255")
        return float(Fraction(num.strip()) / Fraction(den.strip()))
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


@functools.cache
def _adapter(settings: type) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(settings)


def settings_dump(value: Any) -> Any:
    """A settings dataclass as JSON-ready data, without its ``internal`` fields (recursively)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: settings_dump(getattr(value, f.name)) for f in suite_fields(type(value))}
    if isinstance(value, (tuple, list)):
        return [settings_dump(v) for v in value]
    return value


def _validate_settings(settings: type, raw: Any, where: str) -> Any:
    """``raw`` (the YAML mapping) validated against the dataclass ``settings``; ValueError naming ``where``."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ValueError(f"{where}: expected a mapping of settings, got {raw!r}")
    internal = sorted(
        set(raw) & {f.name for f in dataclasses.fields(settings)} - {f.name for f in suite_fields(settings)}
    )
    if internal:
        raise ValueError(f"{where}.{internal[0]}: not a suite setting")
    try:
        return _adapter(settings).validate_python(raw)
    except pydantic.ValidationError as exc:
        raise ValueError(
            "; ".join(
                f"{'.'.join((where, *(str(p) for p in err['loc'])))}: {_message(err['msg'])}" for err in exc.errors()
            )
        ) from None


def _message(msg: str) -> str:
    msg = msg.removeprefix("Value error, ")
    return "unknown setting" if msg == "Unexpected keyword argument" else msg


class MeasurementSettings(Mapping[str, Any]):
    """A suite's measurements: name -> validated settings (a frozen dataclass), in the registry's
    order. ``suite.measurements.pgd_linf`` is the settings or None when the suite lacks it."""

    def __init__(self, items: dict[str, Any]) -> None:
        order = [m.name for m in MEASUREMENTS.in_order()]
        self._items = {name: items[name] for name in order if name in items}

    def __getitem__(self, name: str) -> Any:
        return self._items[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in MEASUREMENTS:
            raise AttributeError(f"no measurement named {name!r}")
        return self._items.get(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, MeasurementSettings) and self._items == other._items

    def __hash__(self) -> int:
        return hash(tuple(self._items.items()))

    def __repr__(self) -> str:
        return f"MeasurementSettings({self._items!r})"

    def replace(self, **changes: Any) -> MeasurementSettings:
        """A copy with measurements replaced (settings objects) or removed (None)."""
        items = {**self._items, **changes}
        return MeasurementSettings({k: v for k, v in items.items() if v is not None})

    def dump(self) -> dict[str, Any]:
        return {name: settings_dump(value) for name, value in self._items.items()}


def _measurement_settings(raw: Any) -> MeasurementSettings:
    if isinstance(raw, MeasurementSettings):
        return raw
    if not isinstance(raw, dict):
        raise ValueError("measurements: expected a mapping of measurement names to their settings")
    items: dict[str, Any] = {}
    for name, value in raw.items():
        if name not in MEASUREMENTS:
            known = [m.name for m in MEASUREMENTS.in_order() if m.settings is not None]
            raise ValueError(
                f"measurements.{name}: unknown measurement.{did_you_mean(str(name), known)} Known: {', '.join(known)}. "
                "A measurement of your own is loaded from $INVARBENCH_MEASUREMENTS (module names) or an "
                "'invarbench.measurements' entry point"
            )
        m = MEASUREMENTS.get(name)
        if m.settings is None:
            raise ValueError(f"measurements.{name}: always measured, it takes no settings: remove it")
        if value is None:  # null removes an inherited measurement
            continue
        items[name] = _validate_settings(m.settings, value, f"measurements.{name}")
    for name in items:
        m = MEASUREMENTS.get(name)
        missing = [r for r in m.requires if r not in items]
        if missing:
            raise ValueError(f"measurements.{name} needs {' and '.join(missing)} in the suite")
        if m.check is not None:
            m.check(items[name], items)
    return MeasurementSettings(items)


def _checks(raw: Any) -> ReliabilityConfig:
    if isinstance(raw, ReliabilityConfig):
        return raw
    return _validate_settings(ReliabilityConfig, raw, "checks")


class Suite(_Strict):
    """A versioned suite: the examples, the seed, the reliability checks' thresholds and every
    measurement's settings (validated against the registry's settings dataclasses)."""

    model_config = ConfigDict(extra="forbid", frozen=True, arbitrary_types_allowed=True)

    name: str
    version: int = Field(ge=1)
    dataset: str
    description: str
    changelog: list[str] = Field(min_length=1)
    include: str | None = Field(default=None, description="the <suite>/<dataset> file this one starts from")
    num_examples: int = Field(ge=1, description="examples of the test split, taken in published order")
    seed: int = 0
    checks: Annotated[ReliabilityConfig, BeforeValidator(_checks)] = ReliabilityConfig()
    measurements: Annotated[MeasurementSettings, BeforeValidator(_measurement_settings)]

    @model_validator(mode="after")
    def _changelog_covers_version(self) -> Suite:
        if not any(line.startswith(f"{self.version}:") for line in self.changelog):
            raise ValueError(f"changelog has no line starting with '{self.version}:' for the current version")
        return self

    @property
    def key(self) -> str:
        return f"{self.name}/{self.dataset}"

    def settings(self) -> dict[str, Any]:
        """Everything that changes a number (not the description, changelog or include line): the data
        set, examples, seed, checks and the settings of the measurements the suite runs."""
        return {
            "dataset": self.dataset,
            "num_examples": self.num_examples,
            "seed": self.seed,
            "checks": settings_dump(self.checks),
            "measurements": self.measurements.dump(),
        }

    def settings_hash(self) -> str:
        """A stable digest of :meth:`settings`; a change needs a new version."""
        text = json.dumps(self.settings(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()

    def to_yaml(self) -> str:
        """The resolved suite (includes applied) as YAML, in the files' key order."""
        data = {
            "name": self.name,
            "version": self.version,
            "dataset": self.dataset,
            "description": self.description,
            "changelog": list(self.changelog),
            "num_examples": self.num_examples,
            "seed": self.seed,
            "checks": settings_dump(self.checks),
            "measurements": self.measurements.dump(),
        }
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


def is_suite_file(name: str) -> bool:
    """Whether a suite name is the path of a suite file of one's own (``my_suite.yaml``)."""
    return name.endswith((".yaml", ".yml"))


def _read_raw(name: str, dataset: str, chain: tuple[str, ...] = ()) -> dict[str, Any]:
    """The file's mapping with its includes applied (not validated yet)."""
    key = f"{name}/{dataset}"
    file = _root().joinpath(name, f"{dataset}.yaml")
    if is_suite_file(name):  # a file of one's own; its include names a package suite
        key, file = name.removesuffix(".yaml").removesuffix(".yml"), Path(name)
        if not file.is_file():
            raise NotFoundError(f"suite file not found: {name}")
    elif not file.is_file():
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
    """Load suite ``name`` for ``dataset`` from the package's suite files, includes resolved; or, when
    ``name`` ends in ``.yaml``, from that file (its ``dataset`` must be ``dataset``; it may include a
    package suite, e.g. ``include: quick/mnist5k``). Raises :class:`NotFoundError` for an unknown
    suite, data set or file and :class:`ValidationError` for an invalid one, naming the field."""
    where = f"{name}/{dataset}.yaml" if not is_suite_file(name) else name
    load_plugins()  # measurements of one's own register before the suite is validated
    try:
        data = _fractions(_read_raw(name, dataset))
    except ValueError as exc:
        raise ValidationError(f"invalid suite file {where}: {exc}") from None
    try:
        suite = Suite.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(file)"
            msg = _message(err["msg"])
            # The settings validators name their own field paths (measurements.pgd_linf.eps: ...).
            problems.append(msg if msg.startswith((f"{loc}.", f"{loc}:")) else f"{loc}: {msg}")
        raise ValidationError(f"invalid suite file {where}: {'; '.join(problems)}") from None
    if is_suite_file(name):
        if suite.name in suite_names():
            raise ValidationError(
                f"suite file {name} is named '{suite.name}', like a packaged suite: give it a name of its own, so "
                "that its runs are never taken for (or ranked with) that suite's"
            )
        if suite.dataset != dataset:
            raise ValidationError(f"suite file {name} is for data set '{suite.dataset}', the model's is '{dataset}'")
        return suite
    if suite.name != name or suite.dataset != dataset:
        raise ValidationError(f"suite file {name}/{dataset}.yaml declares {suite.name}/{suite.dataset}")
    return suite
