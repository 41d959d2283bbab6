"""The JSON interchange format of stored runs: one document per run, written and read.

One JSON document per run holds the model snapshot, the run's provenance, its metrics and its
per-example values, with every number written exactly (see :mod:`invarbench.store.codec`), so
that importing it into any database reproduces the run bit for bit. Each document carries the
sha256 of its own content (``content_sha256``), so that an accidental change after the export (a
hand edit, a bad merge) is refused on import. It is a checksum, not a signature: anyone who edits a
file can recompute it, so it proves nothing about who made the file or whether its numbers are
honest. What does is the results door (:mod:`invarbench.store.document_checks`): every document is
checked against the card and metric specs, and its metrics recomputed from its per-example values.
The public leaderboard keeps one such file per (model, suite name, suite version) under
``leaderboard/results/``; the format is documented in ``docs/store.md``.

The ``run`` object holds the run's own fields (uid, status, flags, times) and every field of
:class:`invarbench.store.provenance.Provenance`, each under its JSON name; the export, the import
and the checks below loop over those fields. Each format version after the first added
provenance fields (:data:`RUN_FIELDS_SINCE`: version 2 ``suite_num_examples``, ``data_source``,
``model_dtype``; version 3 ``suite_settings_hash``, ``suite_settings``; version 4 ``data_digest``). A run is
written in the oldest version that holds every field it recorded (not None): a run that recorded no data
digest (every run stored before migration 0006) is written as version 3 at most, one that recorded none of the
version 3 fields (before migration 0005) as version 2, and one
that recorded none of version 2's either (before migration 0004) as version 1, byte for byte as
before, so that its file, its digest and older readers keep working. Reading a document, the
fields newer than its version are None.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import typing
from datetime import datetime, timezone
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from invarbench.errors import ValidationError
from invarbench.store.codec import decode_floats, decode_number, encode_floats, encode_number
from invarbench.store.provenance import PROVENANCE_FIELDS, Provenance
from invarbench.store.schema import MODEL_SNAPSHOT_FIELDS, RUN_STATUSES, ModelSnapshot, RunRecord

FORMAT = "invarbench-results"
FORMAT_VERSION = 4
# Format version -> the run fields (JSON names of provenance fields) it added: a document of version v has
# every field added up to v, and none added later.
RUN_FIELDS_SINCE: dict[int, tuple[str, ...]] = {
    v: tuple(f.json for f in PROVENANCE_FIELDS if f.since == v) for v in range(2, FORMAT_VERSION + 1)
}
# The run's own keys in the "run" object (not provenance), and where format version 1 put them: after the
# provenance field of that JSON name (None: first). Kept so that every document re-exports byte for byte.
_OWN_RUN_KEYS_AFTER: dict[str | None, tuple[str, ...]] = {
    None: ("uid",),
    "dataset": ("status", "error", "flags"),
    "torch_version": ("started_at", "finished_at", "duration_s", "peak_memory_bytes", "attempts"),
}
DIGEST_FIELD = "content_sha256"
# How an artifact's bytes travel (a file beside the document, or base64 inside it): not content.
_ARTIFACT_TRANSPORT = ("path", "data_base64")


# --- writing ---------------------------------------------------------------------------------
def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc)
    return aware.astimezone(timezone.utc).isoformat()


def format_version_of(run: RunRecord) -> int:
    """The format version a run's document is written in: the newest version that added a provenance field the
    run recorded (not None), or 1 when it recorded none of the fields later versions added."""
    return max((f.since for f in PROVENANCE_FIELDS if f.value(run) is not None), default=1)


def _to_json(value: Any) -> Any:
    """A provenance value for the document: a mapping or list with its floats written exactly (codec)."""
    return encode_floats(value) if isinstance(value, (dict, list)) else value


def _from_json(value: Any) -> Any:
    """The inverse of :func:`_to_json`."""
    return decode_floats(value) if isinstance(value, (dict, list)) else value


def _run_object(run: RunRecord, version: int) -> dict[str, Any]:
    """The document's ``run`` object: the run's own keys and the provenance fields of ``version``, in the order
    format version 1 set (:data:`_OWN_RUN_KEYS_AFTER`), each later version's fields after."""
    own = {
        "uid": run.uid,
        "status": run.status,
        "error": run.error,
        "flags": list(run.flags or []),
        "started_at": _iso(run.started_at),
        "finished_at": _iso(run.finished_at),
        "duration_s": encode_number(run.duration_s),
        "peak_memory_bytes": run.peak_memory_bytes,
        "attempts": run.attempts,
    }
    out = {key: own[key] for key in _OWN_RUN_KEYS_AFTER[None]}
    for f in PROVENANCE_FIELDS:
        if f.since <= version:
            out[f.json] = _to_json(f.value(run))
            out.update((key, own[key]) for key in _OWN_RUN_KEYS_AFTER.get(f.json, ()))
    assert out.keys() >= own.keys(), "a key of the run's own is not placed in _OWN_RUN_KEYS_AFTER"
    return out


def run_document(run: RunRecord, *, artifact_dir: str | None = None) -> dict[str, Any]:
    """The export document of a run loaded by :meth:`Store.get_run`.

    Artifacts are referenced by ``artifact_dir/<name>`` (files written beside the document) when
    ``artifact_dir`` is given, else embedded in base64.
    """
    artifacts = []
    for a in run.artifacts:
        entry: dict[str, Any] = {
            "name": a.name,
            "media_type": a.media_type,
            "sha256": a.sha256,
            "size_bytes": a.size_bytes,
            "created_at": _iso(a.created_at),
        }
        if artifact_dir is not None:
            entry["path"] = f"{artifact_dir}/{a.name}"
        else:
            entry["data_base64"] = base64.b64encode(a.data).decode("ascii")
        artifacts.append(entry)
    version = format_version_of(run)
    body = {
        "model": dataclasses.asdict(ModelSnapshot.of(run.model)),
        "run": _run_object(run, version),
        "metrics": [
            {
                "name": m.name,
                "value": encode_number(m.value),
                "stderr": encode_number(m.stderr),
                "ci_low": encode_number(m.ci_low),
                "ci_high": encode_number(m.ci_high),
                "n": m.n,
            }
            for m in run.metrics
        ],
        "examples": [
            {"measurement": e.measurement, "batch_start": e.batch_start, "values": encode_floats(e.values)}
            for e in sorted(run.examples, key=lambda e: (e.measurement, e.batch_start))
        ],
        "artifacts": artifacts,
    }
    head = {"format": FORMAT, "format_version": version}
    return {**head, DIGEST_FIELD: content_digest({**head, **body}), **body}


def content_digest(document: dict[str, Any]) -> str:
    """The sha256 of a document's content: everything but this digest and how artifact bytes travel.

    The content is hashed as canonical JSON (keys sorted, no spaces, floats by ``repr``, UTF-8), so
    the digest does not depend on indentation or line endings, only on the values.
    """
    body = {k: v for k, v in document.items() if k != DIGEST_FIELD}
    if isinstance(body.get("artifacts"), list):
        body["artifacts"] = [
            {k: v for k, v in a.items() if k not in _ARTIFACT_TRANSPORT} if isinstance(a, dict) else a
            for a in body["artifacts"]
        ]
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def dumps(document: Any) -> str:
    """Indented JSON in which each list of plain values stays on one line (short, reviewable diffs)."""
    return _dump(document, 0) + "\n"


def _dump(value: Any, depth: int) -> str:
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {_dump(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if all(not isinstance(v, (dict, list)) for v in value):
            return json.dumps(value, allow_nan=False, ensure_ascii=False)
        return "[\n" + ",\n".join(inner + _dump(v, depth + 1) for v in value) + "\n" + pad + "]"
    return json.dumps(value, allow_nan=False, ensure_ascii=False)


def json_stream(runs: typing.Iterable[RunRecord]) -> str:
    """The documents of ``runs`` as one JSON list (artifacts embedded): what export prints without --out."""
    return dumps([run_document(run) for run in runs])


# --- reading ---------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _number(value: Any, info) -> float | None:  # pydantic's ValidationInfo
    return decode_number(value, info.field_name)


def _model_doc_fields() -> dict[str, Any]:
    """Each field of :class:`ModelSnapshot`, with its type, required; the sha256 fields 64 lowercase hex digits."""
    hints = typing.get_type_hints(ModelSnapshot)
    return {
        name: (hints[name], Field(pattern=r"^[0-9a-f]{64}$") if name.endswith("_sha256") else ...)
        for name in MODEL_SNAPSHOT_FIELDS
    }


ModelDoc = pydantic.create_model("ModelDoc", __base__=_Strict, **_model_doc_fields())


class _RunOwnDoc(_Strict):
    """The run's own keys of the ``run`` object; :data:`RunDoc` adds the provenance fields."""

    uid: str = Field(min_length=1, max_length=36)
    status: str
    error: str | None
    flags: list[str]
    started_at: datetime
    finished_at: datetime | None
    duration_s: Any = None
    peak_memory_bytes: int | None = None
    attempts: int = 1

    _duration = field_validator("duration_s")(_number)

    @field_validator("status")
    @classmethod
    def _status(cls, v: str) -> str:
        if v not in RUN_STATUSES:
            raise ValueError(f"must be one of {', '.join(RUN_STATUSES)}")
        return v


def _provenance_doc_fields() -> dict[str, Any]:
    """Each provenance field under its JSON name, with its type; those of format version 1 required, later ones
    None when absent (:func:`parse_document` checks them against the document's version)."""
    hints = typing.get_type_hints(Provenance)
    return {f.json: (hints[f.name], ... if f.since == 1 else None) for f in PROVENANCE_FIELDS}


RunDoc = pydantic.create_model("RunDoc", __base__=_RunOwnDoc, **_provenance_doc_fields())


class MetricDoc(_Strict):
    name: str
    value: Any
    stderr: Any
    ci_low: Any
    ci_high: Any
    n: int

    _numbers = field_validator("value", "stderr", "ci_low", "ci_high")(_number)


class ExamplesDoc(_Strict):
    measurement: str
    batch_start: int = Field(ge=0)
    values: dict[str, list]


class ArtifactDoc(_Strict):
    name: str
    media_type: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    size_bytes: int = Field(ge=0)
    created_at: datetime
    path: str | None = None
    data_base64: str | None = None


class ResultsDoc(_Strict):
    format: str
    format_version: int
    content_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    model: ModelDoc
    run: RunDoc
    metrics: list[MetricDoc]
    examples: list[ExamplesDoc]
    artifacts: list[ArtifactDoc] = []


def _utc(ts: datetime | None) -> datetime | None:
    if ts is None:
        return None
    return ts.replace(tzinfo=timezone.utc) if ts.tzinfo is None else ts.astimezone(timezone.utc)


def _cut(text: str, limit: int = 300) -> str:
    """An error's text cut to ``limit`` characters: a value from outside is quoted, never a page of it."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_document(data: Any, source: str) -> ResultsDoc:
    """Validate one export document; errors name ``source`` and the field."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValidationError(f'{source} is not an invarbench results file (no "format": "{FORMAT}")')
    version = data.get("format_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValidationError(
            f"{source}: field 'format_version' must be a whole number from 1, got {_cut(repr(version), 60)}"
        )
    if version > FORMAT_VERSION:
        raise ValidationError(
            f"{source} has format_version {_cut(str(version), 60)}; this invarbench reads up to {FORMAT_VERSION}: "
            "upgrade invarbench"
        )
    try:
        doc = ResultsDoc.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValidationError(f"{source}: field '{where[:200]}': {_cut(first['msg'])}") from None
    run_fields = data["run"].keys()
    for f in PROVENANCE_FIELDS:
        if f.since == 1:
            continue
        if version >= f.since and f.json not in run_fields:
            raise ValidationError(f"{source}: field 'run.{f.json}': Field required in format_version {version}")
        if version < f.since and f.json in run_fields:
            raise ValidationError(
                f"{source}: field 'run.{f.json}' is new in format_version {f.since}, but the document says {version}"
            )
    if content_digest(data) != doc.content_sha256:
        raise ValidationError(
            f"{source}: its content does not match its {DIGEST_FIELD}: it was changed after it was exported. "
            "Results files are written by 'invarbench results export', never edited by hand"
        )
    return doc
