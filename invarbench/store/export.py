"""The JSON interchange format (and a CSV view) of stored runs: export and import.

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
import binascii
import csv
import hashlib
import io
import json
import typing
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from invarbench.errors import NotFoundError, ValidationError
from invarbench.store.codec import decode_floats, decode_number, encode_floats, encode_number
from invarbench.store.db import CUSTOM_DATA, FULL, SMOKE, Standing, Store, best_full_runs
from invarbench.store.document_checks import (
    MAX_ARTIFACT_BYTES,
    check_document,
    check_name,
    inside,
    one_line,
    read_results_file,
)
from invarbench.store.provenance import PROVENANCE_FIELDS, Provenance
from invarbench.store.schema import RUN_STATUSES, ArtifactRecord, ExampleRecord, MetricRecord, RunRecord

FORMAT = "invarbench-results"
FORMAT_VERSION = 4
# Format version -> the run fields (JSON names of provenance fields) it added: a document of version v has
# every field added up to v, and none added later.
RUN_FIELDS_SINCE: dict[int, tuple[str, ...]] = {
    v: tuple(f.json for f in PROVENANCE_FIELDS if f.since == v) for v in range(2, FORMAT_VERSION + 1)
}
V2_RUN_FIELDS = RUN_FIELDS_SINCE[2]
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
# CSV: the run and its model, then every provenance field that has a CSV column, then the times and the metric.
_CSV_HEAD = ("run_id", "run_uid", "card_id", "model_name", "training_method", "status", "flags")
_CSV_TAIL = ("started_at", "finished_at", "metric", "value", "stderr", "ci_low", "ci_high", "n")
CSV_COLUMNS = (*_CSV_HEAD, *(f.csv for f in PROVENANCE_FIELDS if f.csv is not None), *_CSV_TAIL)
# Why the JSON export left a run out (see :func:`export_selection`), in the order they are reported.
LEFT_OUT_REASONS = (SMOKE, CUSTOM_DATA, "superseded", "unfinished")


# --- writing ---------------------------------------------------------------------------------
def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc)
    return aware.astimezone(timezone.utc).isoformat()


def results_file_name(run: RunRecord, kind: str = FULL) -> PurePosixPath:
    """Where the export writes a run's document, relative to its folder.

    A full run (``kind`` :data:`FULL`): ``<dataset>/<model>__<suite>-v<version>.json``, where
    ``<model>`` is the card id's name part; the name depends only on model, suite and version. A
    smoke run: ``...-v<version>__smoke-<examples>ex-<uid8>.json``; a run on custom data:
    ``...-v<version>__custom-data-<uid8>.json`` (``<uid8>``: the first 8 characters of its uid), so that
    neither ever replaces a full run's file. Returns the relative path.

    Raises ValidationError when the card id, data set or suite name is not a name of the card-id grammar
    (:func:`invarbench.store.document_checks.check_name`): each becomes part of the path.
    """
    fix = "such a run cannot be written as a results file (export it with --format csv or to standard output)"
    check_name(run.model.card_id, f"run {run.id}: model.card_id", card_id=True, fix=fix)
    check_name(run.dataset, f"run {run.id}: dataset", fix=fix)
    check_name(run.suite_name, f"run {run.id}: suite_name", fix=fix)
    card_id = run.model.card_id
    prefix = f"{run.dataset}/"
    model = card_id[len(prefix) :] if card_id.startswith(prefix) else card_id.replace("/", "__")
    stem = f"{model}__{run.suite_name}-v{run.suite_version}"
    if kind == SMOKE:
        stem += f"__smoke-{run.examples_effective}ex-{run.uid[:8]}"
    elif kind == CUSTOM_DATA:
        stem += f"__custom-data-{run.uid[:8]}"
    return PurePosixPath(run.dataset) / f"{stem}.json"


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
    model = run.model
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
        "model": {
            "card_id": model.card_id,
            "name": model.name,
            "dataset": model.dataset,
            "training_method": model.training_method,
            "card_sha256": model.card_sha256,
            "file_sha256": model.file_sha256,
            "hub_repo": model.hub_repo,
            "hub_revision": model.hub_revision,
            "card_yaml": model.card_yaml,
        },
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


@dataclass(frozen=True)
class ExportSelection:
    """What the JSON export writes by default, and what it left out."""

    runs: list[Standing]  # full runs, loaded whole (examples, artifacts), in id order
    left_out: Counter  # reason (one of LEFT_OUT_REASONS) -> number of runs


def export_selection(store: Store, *, dataset: str | None = None, model: str | None = None) -> ExportSelection:
    """The runs the JSON export covers by default, and a count of the others by reason.

    Per (model card, suite name, suite version), the newest (highest run id) finished full run:
    on the data set's own test split, over the suite version's full number of examples (the runs the
    leaderboard ranks, :meth:`Store.leaderboard_runs`). Left out: smoke runs (``--limit``), runs on
    custom data (``--data npz:``), full runs superseded by a newer one, and unfinished runs.
    ``dataset`` and ``model`` restrict both. Returns an :class:`ExportSelection`.
    """
    every = store.list_runs(dataset=dataset, model=model)
    standings = store.standing_of([r for r in every if r.status == "finished"])
    chosen = {run.id for run in best_full_runs(standings, per_suite_version=True)}
    left_out: Counter = Counter()
    left_out["unfinished"] = sum(r.status != "finished" for r in every)
    for st in standings:
        if st.run.id not in chosen:
            left_out["superseded" if st.kind == FULL else st.kind] += 1
    runs = [replace(st, run=store.get_run(st.run.id)) for st in standings if st.run.id in chosen]
    return ExportSelection(runs, +left_out)


def export_runs(store: Store, *, dataset: str | None = None, model: str | None = None) -> list[RunRecord]:
    """The runs the JSON export covers by default (see :func:`export_selection`), loaded whole, in id order."""
    return [st.run for st in export_selection(store, dataset=dataset, model=model).runs]


def picked_runs(store: Store, run_ids: Iterable[int]) -> list[Standing]:
    """The runs named by ``--run``, loaded whole, in the order given (each once), smoke and custom-data runs included.

    Raises NotFoundError for an id that is not stored, ValidationError for a run that is not finished.
    """
    runs = []
    for run_id in dict.fromkeys(run_ids):
        run = store.get_run(run_id)
        if run.status != "finished":
            raise ValidationError(
                f"run {run_id} is {run.status}, not finished: only finished runs are exported (continue it with "
                f"'invarbench eval {run.model.card_id} --resume' and the options it was started with)"
            )
        runs.append(run)
    return store.standing_of(runs)


def write_json_tree(runs: Iterable[Standing], out: Path) -> list[Path]:
    """One file per run under ``out`` (see :func:`results_file_name`), artifacts beside it; return the files.

    Raises ValidationError, before writing anything, when two runs would be written to the same file, or
    when a name (card id, data set, suite, artifact) is not a plain name or a path would lie outside ``out``.
    """
    targets: dict[PurePosixPath, RunRecord] = {}
    for st in runs:
        rel = results_file_name(st.run, st.kind)
        if rel in targets:
            raise ValidationError(
                f"runs {targets[rel].id} and {st.run.id} would both be written to {out / rel}: export them "
                "one at a time, into different folders"
            )
        targets[rel] = st.run
        for a in st.run.artifacts:
            check_name(a.name, f"run {st.run.id}: artifact name", fix="it cannot be written as a file")
    out.mkdir(parents=True, exist_ok=True)
    for rel in targets:  # every path checked before the first is written
        inside(out, out / rel)
    written = []
    for rel, run in targets.items():
        path = out / rel
        artifact_dir = rel.stem + ".artifacts"
        path.parent.mkdir(parents=True, exist_ok=True)
        if run.artifacts:
            (path.parent / artifact_dir).mkdir(exist_ok=True)
            for a in run.artifacts:
                inside(out, path.parent / artifact_dir / a.name).write_bytes(a.data)
        path.write_text(dumps(run_document(run, artifact_dir=artifact_dir)), encoding="utf-8")
        written.append(path)
    return written


def json_stream(runs: Iterable[RunRecord]) -> str:
    """The documents of ``runs`` as one JSON list (artifacts embedded): what export prints without --out."""
    return dumps([run_document(run) for run in runs])


def csv_text(runs: Iterable[RunRecord]) -> str:
    """One row per (run, metric), in the columns :data:`CSV_COLUMNS`; floats written exactly (``repr``), absent
    values as empty cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for run in runs:
        head = [
            run.id,
            run.uid,
            run.model.card_id,
            run.model.name,
            run.model.training_method,
            run.status,
            " ".join(run.flags or []),  # the reliability flags, space-separated: a number's caveat travels with it
        ]
        provenance = [_cell(f.value(run)) for f in PROVENANCE_FIELDS if f.csv is not None]
        times = [_iso(run.started_at) or "", _iso(run.finished_at) or ""]
        for m in run.metrics:
            writer.writerow(
                [
                    *head,
                    *provenance,
                    *times,
                    m.name,
                    _num(m.value),
                    _num(m.stderr),
                    _num(m.ci_low),
                    _num(m.ci_high),
                    m.n,
                ]
            )
    return buffer.getvalue()


def _cell(value: Any) -> Any:
    """A provenance value in a CSV cell: empty for None, canonical JSON for a mapping or list."""
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(encode_floats(value), sort_keys=True, separators=(",", ":"), allow_nan=False)
    return value


def _num(value: float | None) -> str:
    return "" if value is None else repr(float(value))


# --- reading ---------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _number(value: Any, info) -> float | None:  # pydantic's ValidationInfo
    return decode_number(value, info.field_name)


class ModelDoc(_Strict):
    card_id: str
    name: str
    dataset: str
    training_method: str
    card_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    file_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    hub_repo: str | None
    hub_revision: str | None
    card_yaml: str


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


@dataclass(frozen=True)
class ImportResult:
    source: str
    run_id: int
    added: bool  # False: a run with the same uid was already in the database


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


@dataclass(frozen=True)
class _Prepared:
    """A checked document, its artifacts' bytes read: ready to be written."""

    doc: ResultsDoc
    source: str
    artifacts: tuple[tuple[ArtifactDoc, bytes], ...]


def _prepare(doc: ResultsDoc, source: str, base_dir: Path | None) -> _Prepared:
    """Read and check the artifacts' bytes of ``doc`` (embedded, or files under ``base_dir``)."""
    artifacts = []
    for a in doc.artifacts:
        if a.data_base64 is not None:
            try:
                data = base64.b64decode(a.data_base64, validate=True)
            except binascii.Error:
                raise ValidationError(f"{source}: artifact '{a.name}' has invalid base64 data") from None
        elif a.path is not None:
            rel = PurePosixPath(a.path)
            if base_dir is None or rel.is_absolute() or ".." in rel.parts:
                raise ValidationError(f"{source}: artifact path '{a.path}' must stay inside the results folder")
            file = base_dir / rel
            if not file.is_file():
                raise NotFoundError(f"{source}: artifact file {file} is missing")
            inside(base_dir, file)  # a link that leads out of the folder is refused
            with open(file, "rb") as fh:
                data = fh.read(MAX_ARTIFACT_BYTES + 1)
        else:
            raise ValidationError(f"{source}: artifact '{a.name}' has neither 'path' nor 'data_base64'")
        if hashlib.sha256(data).hexdigest() != a.sha256 or len(data) != a.size_bytes:
            raise ValidationError(f"{source}: artifact '{a.name}' does not match its sha256 and size")
        artifacts.append((a, data))
    return _Prepared(doc, source, tuple(artifacts))


def _existing(store: Store, item: _Prepared) -> int | None:
    """The id of the stored run with this document's uid, if any; refuses one with other content."""
    run_id = store.run_id_for_uid(item.doc.run.uid)
    if run_id is not None and content_digest(run_document(store.get_run(run_id))) != item.doc.content_sha256:
        raise ValidationError(
            f"{item.source}: run {item.doc.run.uid} is already in the database as run {run_id}, with different "
            "content: nothing was imported"
        )
    return run_id


def _write(store: Store, item: _Prepared) -> ImportResult:
    doc, r = item.doc, item.doc.run
    run = RunRecord(
        uid=r.uid,
        status=r.status,
        error=r.error,
        flags=list(r.flags),
        started_at=_utc(r.started_at),
        finished_at=_utc(r.finished_at),
        duration_s=r.duration_s,
        peak_memory_bytes=r.peak_memory_bytes,
        attempts=r.attempts,
        owner=None,
        updated_at=_utc(r.finished_at),
        **{f.name: _from_json(getattr(r, f.json)) for f in PROVENANCE_FIELDS},
    )
    metrics = [
        MetricRecord(name=m.name, value=m.value, stderr=m.stderr, ci_low=m.ci_low, ci_high=m.ci_high, n=m.n)
        for m in doc.metrics
    ]
    examples = [
        ExampleRecord(measurement=e.measurement, batch_start=e.batch_start, values=decode_floats(e.values))
        for e in doc.examples
    ]
    artifacts = [
        ArtifactRecord(
            name=a.name,
            media_type=a.media_type,
            sha256=a.sha256,
            size_bytes=len(data),
            data=data,
            created_at=_utc(a.created_at),
        )
        for a, data in item.artifacts
    ]
    run_id, added = store.import_run(doc.model.model_dump(), run, metrics, examples, artifacts)
    return ImportResult(source=item.source, run_id=run_id, added=added)


def _import_all(store: Store, items: list[_Prepared]) -> list[ImportResult]:
    present = {id(item): _existing(store, item) for item in items}  # every conflict before the first write
    return [
        ImportResult(item.source, present[id(item)], False) if present[id(item)] is not None else _write(store, item)
        for item in items
    ]


def import_document(store: Store, doc: ResultsDoc, source: str, base_dir: Path | None = None) -> ImportResult:
    """Add the run of ``doc`` to ``store`` unless its uid is there already (importing twice changes nothing).

    A stored run with the same uid but other content (a number, provenance, an artifact) is refused.
    """
    return _import_all(store, [_prepare(doc, source, base_dir)])[0]


def results_files(folder: Path) -> list[Path]:
    """The ``*.json`` files under ``folder``, sorted, leaving out the ``*.artifacts`` folders beside them."""
    return sorted(
        p
        for p in folder.rglob("*.json")
        if p.is_file() and not any(part.endswith(".artifacts") for part in p.relative_to(folder).parts[:-1])
    )


def import_path(store: Store, path: Path, *, unproven: Callable[[str], None] | None = None) -> list[ImportResult]:
    """Import a results file, or every results file under a folder (see :func:`results_files`).

    Every document is read and checked, and compared with the runs already stored, before the
    first is written: a bad file imports nothing. The checks are those of the results door
    (:mod:`invarbench.store.document_checks`): strict JSON (no key twice, sizes capped), the schema and
    digest (:func:`parse_document`), then :func:`~invarbench.store.document_checks.check_document` (names,
    the card inside, metrics against their registered specs and recomputed from the per-example values).
    Raises ValidationError or NotFoundError, one line naming the file and the field. A document whose
    metrics cannot be recomputed (an old file of a suite version this invarbench lacks) is refused, unless
    ``unproven`` is given: then it is imported, and ``unproven`` is called with the reason (one line) for
    each such document after the import (``results import`` does this; ``site build --results`` does not).
    """
    if path.is_dir():
        files = results_files(path)
        if not files:
            raise NotFoundError(f"no .json results files under {path}")
    elif path.is_file():
        files = [path]
    else:
        raise NotFoundError(f"{path} does not exist")
    items: list[_Prepared] = []
    notes: list[str] = []
    for file in files:
        data = read_results_file(file)
        documents = data if isinstance(data, list) else [data]
        for i, item in enumerate(documents):
            source = f"{file}" if len(documents) == 1 else f"{file} (document {i + 1})"
            try:
                doc = parse_document(item, source)
                note = check_document(doc, source, allow_unproven=unproven is not None)
            except ValidationError as exc:  # quoted values from the file: one line, however they were written
                raise ValidationError(one_line(str(exc))) from None
            notes += [note] if note else []
            items.append(_prepare(doc, source, file.parent))
    results = _import_all(store, items)
    for note in notes:
        unproven(note)
    return results
