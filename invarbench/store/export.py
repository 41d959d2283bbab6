"""The JSON interchange format (and a CSV view) of stored runs: export and import.

One JSON document per run holds the model snapshot, the run's provenance, its metrics and its
per-example values, with every number written exactly (see :mod:`invarbench.store.codec`), so
that importing it into any database reproduces the run bit for bit. The public leaderboard keeps
one such file per (model, suite name, suite version) under ``leaderboard/results/``; the format
is documented in ``docs/results-format.md``.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from invarbench.errors import NotFoundError, ValidationError
from invarbench.store.codec import decode_floats, decode_number, encode_floats, encode_number
from invarbench.store.db import Store
from invarbench.store.schema import RUN_STATUSES, ArtifactRecord, ExampleRecord, MetricRecord, RunRecord

FORMAT = "invarbench-results"
FORMAT_VERSION = 1
CSV_COLUMNS = (
    "run_id", "run_uid", "card_id", "model_name", "dataset", "training_method", "suite_name", "suite_version",
    "status", "examples_effective", "seed", "device", "invarbench_version", "git_commit", "torch_version",
    "started_at", "finished_at", "metric", "value", "stderr", "ci_low", "ci_high", "n",
)


# --- writing ---------------------------------------------------------------------------------
def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    aware = ts if ts.tzinfo is not None else ts.replace(tzinfo=timezone.utc)
    return aware.astimezone(timezone.utc).isoformat()


def results_file_name(run: RunRecord) -> PurePosixPath:
    """``<dataset>/<model>__<suite>-v<version>.json``, where ``<model>`` is the card id's name part."""
    card_id = run.model.card_id
    prefix = f"{run.dataset}/"
    model = card_id[len(prefix):] if card_id.startswith(prefix) else card_id.replace("/", "__")
    return PurePosixPath(run.dataset) / f"{model}__{run.suite_name}-v{run.suite_version}.json"


def run_document(run: RunRecord, *, artifact_dir: str | None = None) -> dict[str, Any]:
    """The export document of a run loaded by :meth:`Store.get_run`.

    Artifacts are referenced by ``artifact_dir/<name>`` (files written beside the document) when
    ``artifact_dir`` is given, else embedded in base64.
    """
    model = run.model
    artifacts = []
    for a in run.artifacts:
        entry: dict[str, Any] = {"name": a.name, "media_type": a.media_type, "sha256": a.sha256,
                                 "size_bytes": a.size_bytes, "created_at": _iso(a.created_at)}
        if artifact_dir is not None:
            entry["path"] = f"{artifact_dir}/{a.name}"
        else:
            entry["data_base64"] = base64.b64encode(a.data).decode("ascii")
        artifacts.append(entry)
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model": {
            "card_id": model.card_id, "name": model.name, "dataset": model.dataset,
            "training_method": model.training_method, "card_sha256": model.card_sha256,
            "file_sha256": model.file_sha256, "hub_repo": model.hub_repo, "hub_revision": model.hub_revision,
            "card_yaml": model.card_yaml,
        },
        "run": {
            "uid": run.uid, "suite_name": run.suite_name, "suite_version": run.suite_version, "dataset": run.dataset,
            "status": run.status, "error": run.error, "flags": list(run.flags or []), "seed": run.seed,
            "batch_size": run.batch_size, "examples_requested": run.examples_requested,
            "examples_effective": run.examples_effective, "device": run.device,
            "invarbench_version": run.invarbench_version, "git_commit": run.git_commit,
            "torch_version": run.torch_version, "started_at": _iso(run.started_at),
            "finished_at": _iso(run.finished_at), "duration_s": encode_number(run.duration_s),
            "peak_memory_bytes": run.peak_memory_bytes, "attempts": run.attempts,
        },
        "metrics": [
            {"name": m.name, "value": encode_number(m.value), "stderr": encode_number(m.stderr),
             "ci_low": encode_number(m.ci_low), "ci_high": encode_number(m.ci_high), "n": m.n}
            for m in run.metrics
        ],
        "examples": [
            {"measurement": e.measurement, "batch_start": e.batch_start, "values": encode_floats(e.values)}
            for e in sorted(run.examples, key=lambda e: (e.measurement, e.batch_start))
        ],
        "artifacts": artifacts,
    }


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


def export_runs(store: Store, *, dataset: str | None = None, model: str | None = None) -> list[RunRecord]:
    """The runs the JSON export covers: the newest finished run of each (model card, suite, suite version)."""
    latest: dict[tuple[str, str, int], int] = {}
    for run in store.list_runs(dataset=dataset, model=model, status="finished"):
        latest[(run.model.card_id, run.suite_name, run.suite_version)] = run.id
    return [store.get_run(run_id) for run_id in sorted(latest.values())]


def write_json_tree(runs: Iterable[RunRecord], out: Path) -> list[Path]:
    """One file per run under ``out`` (see :func:`results_file_name`), artifacts beside it; return the files."""
    written = []
    for run in runs:
        rel = results_file_name(run)
        path = out / rel
        artifact_dir = rel.stem + ".artifacts"
        path.parent.mkdir(parents=True, exist_ok=True)
        if run.artifacts:
            (path.parent / artifact_dir).mkdir(exist_ok=True)
            for a in run.artifacts:
                (path.parent / artifact_dir / a.name).write_bytes(a.data)
        path.write_text(dumps(run_document(run, artifact_dir=artifact_dir)), encoding="utf-8")
        written.append(path)
    return written


def json_stream(runs: Iterable[RunRecord]) -> str:
    """The documents of ``runs`` as one JSON list (artifacts embedded): what export prints without --out."""
    return dumps([run_document(run) for run in runs])


def csv_text(runs: Iterable[RunRecord]) -> str:
    """One row per (run, metric); floats written exactly (``repr``)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for run in runs:
        for m in run.metrics:
            writer.writerow([
                run.id, run.uid, run.model.card_id, run.model.name, run.dataset, run.model.training_method,
                run.suite_name, run.suite_version, run.status, run.examples_effective, run.seed, run.device,
                run.invarbench_version, run.git_commit or "", run.torch_version, _iso(run.started_at) or "",
                _iso(run.finished_at) or "", m.name, _num(m.value), _num(m.stderr), _num(m.ci_low), _num(m.ci_high),
                m.n,
            ])
    return buffer.getvalue()


def _num(value: float | None) -> str:
    return "" if value is None else repr(float(value))


# --- reading ---------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _number(value: Any, info) -> float | None:  # noqa: ANN001 - pydantic's ValidationInfo
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


class RunDoc(_Strict):
    uid: str = Field(min_length=1, max_length=36)
    suite_name: str
    suite_version: int
    dataset: str
    status: str
    error: str | None
    flags: list[str]
    seed: int
    batch_size: int
    examples_requested: int
    examples_effective: int
    device: str
    invarbench_version: str
    git_commit: str | None
    torch_version: str
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


def parse_document(data: Any, source: str) -> ResultsDoc:
    """Validate one export document; errors name ``source`` and the field."""
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValidationError(f"{source} is not an invarbench results file (no \"format\": \"{FORMAT}\")")
    version = data.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise ValidationError(
            f"{source} has format_version {version!r}; this invarbench reads up to {FORMAT_VERSION}: upgrade invarbench"
        )
    try:
        return ResultsDoc.model_validate(data)
    except pydantic.ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise ValidationError(f"{source}: field '{where}': {first['msg']}") from None


def import_document(store: Store, doc: ResultsDoc, source: str, base_dir: Path | None = None) -> ImportResult:
    """Add the run of ``doc`` to ``store`` unless its uid is there already (importing twice changes nothing)."""
    artifacts = []
    for a in doc.artifacts:
        if a.data_base64 is not None:
            data = base64.b64decode(a.data_base64)
        elif a.path is not None and base_dir is not None:
            rel = PurePosixPath(a.path)
            if rel.is_absolute() or ".." in rel.parts:
                raise ValidationError(f"{source}: artifact path '{a.path}' must stay inside the results folder")
            file = base_dir / rel
            if not file.is_file():
                raise NotFoundError(f"{source}: artifact file {file} is missing")
            data = file.read_bytes()
        else:
            raise ValidationError(f"{source}: artifact '{a.name}' has neither 'path' nor 'data_base64'")
        if hashlib.sha256(data).hexdigest() != a.sha256:
            raise ValidationError(f"{source}: artifact '{a.name}' does not match its sha256")
        artifacts.append(ArtifactRecord(name=a.name, media_type=a.media_type, sha256=a.sha256,
                                        size_bytes=len(data), data=data, created_at=_utc(a.created_at)))
    r = doc.run
    run = RunRecord(
        uid=r.uid, suite_name=r.suite_name, suite_version=r.suite_version, dataset=r.dataset, status=r.status,
        error=r.error, flags=list(r.flags), seed=r.seed, batch_size=r.batch_size,
        examples_requested=r.examples_requested, examples_effective=r.examples_effective, device=r.device,
        invarbench_version=r.invarbench_version, git_commit=r.git_commit, torch_version=r.torch_version,
        started_at=_utc(r.started_at), finished_at=_utc(r.finished_at), duration_s=r.duration_s,
        peak_memory_bytes=r.peak_memory_bytes, attempts=r.attempts, owner=None, updated_at=_utc(r.finished_at),
    )
    metrics = [MetricRecord(name=m.name, value=m.value, stderr=m.stderr, ci_low=m.ci_low, ci_high=m.ci_high, n=m.n)
               for m in doc.metrics]
    examples = [ExampleRecord(measurement=e.measurement, batch_start=e.batch_start, values=decode_floats(e.values))
                for e in doc.examples]
    run_id, added = store.import_run(doc.model.model_dump(), run, metrics, examples, artifacts)
    return ImportResult(source=source, run_id=run_id, added=added)


def import_path(store: Store, path: Path) -> list[ImportResult]:
    """Import a results file, or every ``*.json`` file under a folder (sorted by path)."""
    if path.is_dir():
        files = sorted(p for p in path.rglob("*.json") if p.is_file())
        if not files:
            raise NotFoundError(f"no .json results files under {path}")
    elif path.is_file():
        files = [path]
    else:
        raise NotFoundError(f"{path} does not exist")
    results = []
    for file in files:
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ValidationError(f"{file} is not valid JSON: {exc}") from None
        documents = data if isinstance(data, list) else [data]
        for i, item in enumerate(documents):
            source = f"{file}" if len(documents) == 1 else f"{file} (document {i + 1})"
            results.append(import_document(store, parse_document(item, source), source, file.parent))
    return results
