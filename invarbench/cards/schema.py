"""Model card schema, version 1.

A card is untrusted input (anyone can open a pull request with one): it is read with
``yaml.safe_load`` and validated here field by field. Errors name the file, the field and the
fix. The schema is documented for submitters in ``docs/model-cards.md``; keep the two in step.
"""

from __future__ import annotations

import math
import re
from fractions import Fraction
from pathlib import PurePosixPath
from typing import Annotated, Literal

from pydantic import AfterValidator, AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from invarbench.cards.formats import FORMATS, format_choices
from invarbench.registry import did_you_mean

CARD_SCHEMA_VERSION = 1
# The training methods a card may name, each with the words the site and the docs show for it.
TRAINING_METHODS: dict[str, str] = {
    "standard": "standard (no adversarial training)",
    "pgd-at": "PGD adversarial training (Madry et al., 2018)",
    "trades": "TRADES (Zhang et al., 2019)",
    "ccat": "confidence-calibrated adversarial training (Stutz et al., 2020)",
    "certified": "certified (verified) training",
    "adversarial": "adversarial training, the attack not stated upstream",
    "other": "other (see the notes and the origin)",
}
# Methods trained against a threat model: the card states its norm and eps (or, on a card with an
# ``origin`` whose upstream does not state them, writes them as null). 'adversarial' is for a public
# checkpoint whose upstream says it was adversarially trained but not how; a submitted card names its method.
ADVERSARIAL_METHODS = ("pgd-at", "trades", "ccat", "certified", "adversarial")
NORMS = ("linf", "l2")

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_HEX40_RE = re.compile(r"^[0-9a-f]{40}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_REPO_PART = r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?"
_REPO_RE = re.compile(rf"^{_REPO_PART}/{_REPO_PART}$")
_FILE_PART_RE = re.compile(r"^[A-Za-z0-9_.+-]+$")
_URL_RE = re.compile(r"^https?://[^\s]+$")

# Suffixes that betray a pickle (each format's own suffix is its registry entry's).
_PICKLE_SUFFIXES = (".pt", ".pth", ".bin", ".pkl", ".pickle", ".ckpt", ".tar", ".pth.tar", ".npy", ".npz")


class FieldError(ValueError):
    """A cross-field problem raised by a model validator, with the field the card must change.

    Pydantic reports model-level errors at the model's own location; the message names ``field``
    instead, so that a submitter sees which field to fix rather than "(top level)".
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


def _finite(value: float) -> float:
    # NaN passes every "refuse when v <= 0" check and infinity every "v > 0" one: refuse both first.
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {value} (NaN and infinity are not numbers a card can hold)")
    return value


FiniteFloat = Annotated[float, AfterValidator(_finite)]
"""The type of every float field of a card: a number, never NaN, ``inf`` or ``-inf`` (nor their strings)."""


def _finite_values(value: object, field: str) -> None:
    """Refuse NaN and infinity anywhere in free-form values (nested lists and mappings)."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{field} must be a finite number, got {value} (NaN and infinity are not numbers)")
    if isinstance(value, dict):
        for key, item in value.items():
            _finite_values(item, f"{field}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _finite_values(item, f"{field}[{i}]")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def _safe_relative_file(value: str, field: str) -> str:
    """A relative POSIX path of plain names: no absolute path, '..', backslash or hidden parts."""
    parts = PurePosixPath(value).parts
    if (
        not value
        or value.startswith("/")
        or "\\" in value
        or any(p in (".", "..") or p.startswith(".") or not _FILE_PART_RE.match(p) for p in parts)
    ):
        raise ValueError(
            f"{field} must be a relative path of plain names (letters, digits, '_', '-', '.', '+'; "
            f"no '..', leading '/' or hidden parts), got '{value}'"
        )
    return value


def _sha256(value: str, field: str) -> str:
    if not _HEX64_RE.match(value):
        raise ValueError(
            f"{field} must be the 64 lowercase hex characters of the file's sha256 (sha256sum FILE, "
            f"or 'invarbench cards new' computes it), got '{value}'"
        )
    return value


class HubSource(_Strict):
    """A file in a Hugging Face Hub model repository, pinned to a commit and a checksum."""

    repo_id: str = Field(description="'org/name' of the Hub model repository")
    revision: str = Field(description="the full 40-hex commit hash of the Hub revision")
    file: str = Field(description="the file's path inside the repository")
    sha256: str = Field(description="sha256 of the file's bytes")

    @field_validator("repo_id")
    @classmethod
    def _repo(cls, v: str) -> str:
        if not _REPO_RE.match(v) or ".." in v or "--" in v:
            raise ValueError(f"repo_id must look like 'org/name' (letters, digits, '.', '_', '-'), got '{v}'")
        return v

    @field_validator("revision")
    @classmethod
    def _revision(cls, v: str) -> str:
        if not _HEX40_RE.match(v):
            raise ValueError(
                f"revision must be a full 40-character lowercase commit hash, not a branch or tag "
                f"(copy it from the repository's commit history on the Hub), got '{v}'"
            )
        return v

    @field_validator("file")
    @classmethod
    def _file(cls, v: str) -> str:
        return _safe_relative_file(v, "file")

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        return _sha256(v, "sha256")


class Source(_Strict):
    """Exactly one of ``hub`` (public models) or ``path`` (a file next to the card) with its ``sha256``."""

    hub: HubSource | None = None
    path: str | None = Field(default=None, description="a file relative to the card's folder")
    sha256: str | None = Field(default=None, description="checksum of the local ``path`` file")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        return None if v is None else _safe_relative_file(v, "path")

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str | None) -> str | None:
        return None if v is None else _sha256(v, "sha256")

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        if (self.hub is None) == (self.path is None):
            raise ValueError("give exactly one of 'hub' (a Hub repository) or 'path' (a file next to the card)")
        if self.hub is not None and self.sha256 is not None:
            raise ValueError("for a hub source put sha256 inside 'hub'")
        if self.path is not None and self.sha256 is None:
            raise ValueError("a local 'path' needs its 'sha256' next to it (sha256sum FILE)")
        return self

    @property
    def file_name(self) -> str:
        return self.hub.file if self.hub is not None else str(self.path)


class Architecture(_Strict):
    """A registered architecture (``invarbench cards architectures``) and its keyword arguments."""

    name: str
    kwargs: dict[str, object] = Field(default_factory=dict)

    @field_validator("kwargs")
    @classmethod
    def _kwargs(cls, v: dict[str, object]) -> dict[str, object]:
        for key, value in v.items():
            _finite_values(value, str(key))
        return v

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not re.match(r"^[A-Za-z0-9_./-]+$", v):
            raise ValueError(f"architecture name must be a registered name such as 'wide_resnet28_10', got '{v}'")
        return v


class Preprocessing(_Strict):
    """What the wrapper does to images in [0, 1] before the network sees them."""

    mean: list[FiniteFloat] | None = None
    std: list[FiniteFloat] | None = None
    input_size: list[int] = Field(description="[channels, height, width]")

    @field_validator("input_size")
    @classmethod
    def _size(cls, v: list[int]) -> list[int]:
        if len(v) != 3 or any(s <= 0 for s in v):
            raise ValueError(f"input_size must be [channels, height, width] of positive integers, got {v}")
        return v

    @model_validator(mode="after")
    def _norm(self) -> Preprocessing:
        if (self.mean is None) != (self.std is None):
            raise ValueError("give both mean and std (one value per channel), or neither")
        channels = self.input_size[0]
        for field, values in (("mean", self.mean), ("std", self.std)):
            if values is not None and len(values) != channels:
                raise ValueError(
                    f"{field} needs one value per channel: input_size has {channels} channels, "
                    f"{field} has {len(values)}"
                )
        if self.std is not None and not all(s > 0 for s in self.std):  # written so that NaN fails too
            raise ValueError(f"std values must be positive, got {self.std}")
        if not all(0 <= m <= 1 for m in self.mean or []) or not all(s <= 1 for s in self.std or []):
            raise ValueError(
                f"mean {self.mean} and std {self.std} must be on the [0, 1] scale of the images (e.g. mean 0.1307, "
                "std 0.3081 for MNIST), not on the 0-255 scale"
            )
        return self


class Training(_Strict):
    """How the model was trained: the method and, for adversarial training, the threat model."""

    method: Literal[tuple(TRAINING_METHODS)]  # type: ignore[valid-type]
    norm: Literal["linf", "l2"] | None = None
    eps: FiniteFloat | None = Field(
        default=None,
        validation_alias=AliasChoices("eps", "epsilon"),
        description="the training budget on the [0, 1] pixel scale; a number or a fraction such as '8/255'",
    )

    @field_validator("eps", mode="before")
    @classmethod
    def _fraction(cls, v: object) -> object:
        if isinstance(v, str):
            try:
                return float(Fraction(v.replace(" ", "")))
            except (ValueError, ZeroDivisionError):
                raise ValueError(f"eps must be a number or a fraction such as '8/255', got '{v}'") from None
        return v

    @model_validator(mode="after")
    def _threat_model(self) -> Training:
        if self.method in ADVERSARIAL_METHODS:
            # An explicit null (``eps: null``) says "not stated upstream"; ModelCard allows it only with an origin.
            absent = [f for f in ("norm", "eps") if getattr(self, f) is None and f not in self.model_fields_set]
            if absent:
                raise ValueError(f"method '{self.method}' needs the training threat model: norm (linf or l2) and eps")
        elif self.method == "standard" and (self.norm is not None or self.eps is not None):
            raise ValueError("method 'standard' has no threat model: remove norm and eps")
        if self.eps is not None:
            if not self.eps > 0:  # written so that NaN fails too
                raise ValueError(f"eps must be positive, got {self.eps}")
            if self.norm == "linf" and not self.eps <= 1:
                raise ValueError(f"eps is on the [0, 1] pixel scale: write 8/255 (0.0314), not 8; got {self.eps}")
        return self


class Paper(_Strict):
    title: str = Field(min_length=1)
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not _URL_RE.match(v):
            raise ValueError(f"url must start with http:// or https://, got '{v}'")
        return v


class ReportedNumber(_Strict):
    """One number the upstream reports for its own checkpoint, and where it says so.

    ``value`` is in ``unit``: ``percent`` (99.48), ``fraction`` (0.3364) or ``count`` (980 correct out
    of ``examples``). ``examples`` is how many test images the number counts, the first ones of the
    split in order (e.g. 1000 for ERAN's ``acc`` field, 10000 for the whole MNIST test set), when the
    upstream says so; tests compare a card's model against a clean accuracy or error with it.
    """

    metric: str = Field(min_length=1, description="what was measured, e.g. 'clean accuracy', 'certified robust error'")
    value: float = Field(allow_inf_nan=False)
    unit: Literal["percent", "fraction", "count"]
    split: str = Field(min_length=1, description="the data it was measured on, e.g. 'MNIST test set'")
    examples: int | None = Field(default=None, gt=0, description="the first N images of the split, when stated")
    where: str = Field(min_length=1, description="where the upstream states it: file and place, or checkpoint field")

    @model_validator(mode="after")
    def _range(self) -> ReportedNumber:
        limit = {"percent": 100.0, "fraction": 1.0}.get(self.unit)
        if self.value < 0 or (limit is not None and self.value > limit):
            raise ValueError(f"a value in unit '{self.unit}' must lie in [0, {limit or 'examples'}], got {self.value}")
        if self.unit == "count":
            if self.examples is None:
                raise ValueError("a count needs 'examples': the number of test images it counts")
            if self.value != int(self.value) or self.value > self.examples:
                raise ValueError(f"a count is a whole number of at most examples={self.examples}, got {self.value}")
        return self


class Origin(_Strict):
    """Where a public checkpoint comes from: the upstream file, its makers, and what they state about it.

    For models that someone else trained and published (optional for submitted cards). ``training``
    is the upstream's own account, with "not stated upstream" where it is silent, never a guess;
    ``reported`` lists the upstream's numbers, each with where it is stated.
    """

    repository: str = Field(description="the upstream repository's URL, e.g. https://github.com/org/name")
    commit: str = Field(description="the full 40-hex commit the file was taken from")
    path: str = Field(description="the file's path inside the repository at that commit")
    sha256: str = Field(description="sha256 of the upstream file's bytes (before conversion)")
    license: str = Field(min_length=1, description="the upstream repository's licence, an SPDX identifier")
    authors: str = Field(min_length=1, description="who trained or published the model")
    paper: Paper | None = None
    training: str = Field(min_length=1, description="training as the upstream states it; 'not stated upstream'")
    reported: list[ReportedNumber] = Field(default_factory=list)
    notes: str | None = Field(default=None, description="what the conversion selected or dropped, and why")

    @field_validator("repository")
    @classmethod
    def _repository(cls, v: str) -> str:
        if not _URL_RE.match(v):
            raise ValueError(f"repository must be the repository's http(s) URL, got '{v}'")
        return v

    @field_validator("commit")
    @classmethod
    def _commit(cls, v: str) -> str:
        if not _HEX40_RE.match(v):
            raise ValueError(f"commit must be the full 40-character lowercase commit hash (git rev-parse), got '{v}'")
        return v

    @field_validator("path")
    @classmethod
    def _path(cls, v: str) -> str:
        return _safe_relative_file(v, "path")

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        return _sha256(v, "sha256")


class ModelCard(_Strict):
    schema_version: int = CARD_SCHEMA_VERSION
    id: str = Field(description="'<dataset>/<name>'; the card lives at model_cards/<dataset>/<name>.yaml")
    name: str = Field(min_length=1, max_length=200, description="the display name on the leaderboard")
    dataset: str
    num_classes: int = Field(gt=1)
    source: Source
    format: str = Field(description="a registered model format (invarbench.cards.formats.FORMATS)")
    architecture: Architecture | None = None
    preprocessing: Preprocessing
    training: Training
    paper: Paper | None = None
    license: str = Field(min_length=1, description="an SPDX identifier such as MIT or Apache-2.0")
    submitted_by: str = Field(min_length=1)
    notes: str | None = None
    origin: Origin | None = None

    @field_validator("schema_version")
    @classmethod
    def _version(cls, v: int) -> int:
        if v != CARD_SCHEMA_VERSION:
            raise ValueError(
                f"this invarbench reads card schema version {CARD_SCHEMA_VERSION}, the card says {v}: "
                "upgrade invarbench or write a version-1 card"
            )
        return v

    @field_validator("format")
    @classmethod
    def _format(cls, v: str) -> str:
        if v not in FORMATS:
            raise ValueError(f"unknown model format '{v}'.{did_you_mean(v, FORMATS.names())} Known: {format_choices()}")
        return v

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        parts = v.split("/")
        if len(parts) != 2 or not all(NAME_RE.match(p) and ".." not in p for p in parts):
            raise ValueError(
                f"id must be '<dataset>/<name>' in lowercase letters, digits, '.', '_' or '-' (no '..'), got '{v}'"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        if self.id.split("/")[0] != self.dataset:
            raise FieldError("id", f"id '{self.id}' must start with its dataset '{self.dataset}/'")
        fmt = FORMATS.get(self.format)
        if fmt.needs_architecture and self.architecture is None:
            raise FieldError("architecture", f"format '{fmt.name}' needs an 'architecture' (name and kwargs)")
        if not fmt.needs_architecture and self.architecture is not None:
            raise FieldError("architecture", f"format '{fmt.name}' carries its own graph: remove 'architecture'")
        if self.training.method == "adversarial" and self.origin is None:
            raise FieldError(
                "training.method",
                "training method 'adversarial' (the attack not stated) is for a public checkpoint with an "
                "'origin'; name the method the model was trained with: pgd-at, trades, ccat or certified",
            )
        if self.training.method in ADVERSARIAL_METHODS and self.origin is None:
            for field in ("norm", "eps"):
                if getattr(self.training, field) is None:
                    raise FieldError(
                        f"training.{field}",
                        f"training.{field} is null: only a card with an 'origin' (a public checkpoint whose "
                        f"upstream does not state it) may leave it out; give the {field} the model was trained with",
                    )
        if self.training.method == "other" and not self.notes:
            raise FieldError("notes", "training method 'other' needs 'notes' that describe the method")
        file_name = self.source.file_name.lower()
        file_field = "source.hub.file" if self.source.hub is not None else "source.path"
        if file_name.endswith(_PICKLE_SUFFIXES):
            raise FieldError(
                file_field,
                f"'{self.source.file_name}' looks like a pickled checkpoint, which invarbench never loads: "
                "save the weights with safetensors (format safetensors) or run 'invarbench pack' (format torch-export)",
            )
        suffix = fmt.suffix
        if not file_name.endswith(suffix):
            raise FieldError(
                file_field, f"format '{self.format}' needs a '{suffix}' file, got '{self.source.file_name}'"
            )
        return self

    @property
    def model_name(self) -> str:
        return self.id.split("/")[1]
