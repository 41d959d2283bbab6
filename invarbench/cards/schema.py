"""Model card schema, version 1.

A card is untrusted input (anyone can open a pull request with one): it is read with
``yaml.safe_load`` and validated here field by field. Errors name the file, the field and the
fix. The schema is documented for submitters in ``docs/model-cards.md``.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

CARD_SCHEMA_VERSION = 1

_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9._-]*$")
_HEX40_RE = re.compile(r"^[0-9a-f]{40}$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _safe_relative_file(value: str, field: str) -> str:
    path = PurePosixPath(value)
    if value.strip() == "" or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError(f"{field} must be a relative path inside its folder, without '..', got '{value}'")
    return value


class HubSource(_Strict):
    repo_id: str
    revision: str = Field(description="the full 40-hex commit hash of the Hub revision")
    file: str
    sha256: str

    @field_validator("repo_id")
    @classmethod
    def _repo(cls, v: str) -> str:
        if not _REPO_RE.match(v) or ".." in v:
            raise ValueError(f"repo_id must look like 'org/name', got '{v}'")
        return v

    @field_validator("revision")
    @classmethod
    def _revision(cls, v: str) -> str:
        if not _HEX40_RE.match(v):
            raise ValueError(
                f"revision must be a full 40-character commit hash (not a branch or tag), got '{v}'"
            )
        return v

    @field_validator("file")
    @classmethod
    def _file(cls, v: str) -> str:
        return _safe_relative_file(v, "file")

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str) -> str:
        if not _HEX64_RE.match(v):
            raise ValueError(f"sha256 must be 64 lowercase hex characters, got '{v}'")
        return v


class Source(_Strict):
    """Exactly one of ``hub`` (public models) or ``path`` (bundled reference models, private use)."""

    hub: HubSource | None = None
    path: str | None = None
    sha256: str | None = Field(default=None, description="checksum of a local ``path`` file")

    @field_validator("path")
    @classmethod
    def _path(cls, v: str | None) -> str | None:
        return None if v is None else _safe_relative_file(v, "path")

    @field_validator("sha256")
    @classmethod
    def _sha(cls, v: str | None) -> str | None:
        if v is not None and not _HEX64_RE.match(v):
            raise ValueError(f"sha256 must be 64 lowercase hex characters, got '{v}'")
        return v

    @model_validator(mode="after")
    def _exactly_one(self) -> Source:
        if (self.hub is None) == (self.path is None):
            raise ValueError("give exactly one of 'hub' or 'path'")
        if self.hub is not None and self.sha256 is not None:
            raise ValueError("for a hub source put sha256 inside 'hub'")
        return self


class Architecture(_Strict):
    name: str
    kwargs: dict[str, object] = Field(default_factory=dict)


class Preprocessing(_Strict):
    mean: list[float] | None = None
    std: list[float] | None = None
    input_size: list[int] = Field(description="[channels, height, width]")

    @field_validator("input_size")
    @classmethod
    def _size(cls, v: list[int]) -> list[int]:
        if len(v) != 3 or any(s <= 0 for s in v):
            raise ValueError(f"input_size must be [channels, height, width] of positive integers, got {v}")
        return v


class Training(_Strict):
    method: Literal["standard", "pgd-at", "trades", "ccat", "other"]
    norm: Literal["linf", "l2"] | None = None
    epsilon: float | None = None


class Paper(_Strict):
    title: str
    url: str | None = None


class ModelCard(_Strict):
    schema_version: Literal[1] = 1
    id: str = Field(description="'<dataset>/<name>'; the card lives at model_cards/<dataset>/<name>.yaml")
    name: str
    dataset: str
    num_classes: int = Field(gt=1)
    source: Source
    format: Literal["safetensors", "torch-export"]
    architecture: Architecture | None = None
    preprocessing: Preprocessing
    training: Training
    paper: Paper | None = None
    license: str
    submitted_by: str
    notes: str | None = None

    @field_validator("id")
    @classmethod
    def _id(cls, v: str) -> str:
        parts = v.split("/")
        if len(parts) != 2 or not all(_NAME_RE.match(p) for p in parts):
            raise ValueError(
                f"id must be '<dataset>/<name>' in lowercase letters, digits, '.', '_' or '-', got '{v}'"
            )
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        if self.id.split("/")[0] != self.dataset:
            raise ValueError(f"id '{self.id}' must start with its dataset '{self.dataset}/'")
        if self.format == "safetensors" and self.architecture is None:
            raise ValueError("format 'safetensors' needs an 'architecture' (name and kwargs)")
        if self.format == "torch-export" and self.architecture is not None:
            raise ValueError("format 'torch-export' carries its own graph: remove 'architecture'")
        return self

    @property
    def model_name(self) -> str:
        return self.id.split("/")[1]
