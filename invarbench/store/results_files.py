"""Results files on disk: where a run's document goes, writing a folder of them, and importing them.

A folder of results files (``leaderboard/results/``) holds one JSON document per run
(:mod:`invarbench.store.documents`) at :func:`results_file_name`, its artifacts in a ``<stem>.artifacts``
folder beside it. :func:`write_json_tree` writes such a folder; :func:`import_path` reads one through the
results door (:mod:`invarbench.store.document_checks`) into a store, and :func:`results_store` into a
throwaway SQLite database, for what reads published results without a database of its own (the site
build, ``cards status --results``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from invarbench.errors import NotFoundError, ValidationError
from invarbench.leaderboard_policy import CUSTOM_DATA, FULL, SMOKE, Standing
from invarbench.store.codec import decode_floats
from invarbench.store.db import Store
from invarbench.store.document_checks import (
    MAX_ARTIFACT_BYTES,
    check_document,
    check_name,
    inside,
    one_line,
    read_results_file,
)
from invarbench.store.documents import (
    ArtifactDoc,
    ResultsDoc,
    _from_json,
    _utc,
    content_digest,
    dumps,
    parse_document,
    run_document,
)
from invarbench.store.provenance import PROVENANCE_FIELDS
from invarbench.store.schema import ArtifactRecord, ExampleRecord, MetricRecord, ModelSnapshot, RunRecord


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


# --- reading ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ImportResult:
    source: str
    run_id: int
    added: bool  # False: a run with the same uid was already in the database


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
    run_id, added = store.import_run(ModelSnapshot(**doc.model.model_dump()), run, metrics, examples, artifacts)
    return ImportResult(source=item.source, run_id=run_id, added=added)


def _import_all(store: Store, items: list[_Prepared]) -> list[ImportResult]:
    present = {id(item): _existing(store, item) for item in items}  # every conflict before the first write
    return [
        ImportResult(item.source, present[id(item)], False) if present[id(item)] is not None else _write(store, item)
        for item in items
    ]


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


@contextmanager
def results_store(results: Path) -> Iterator[Store]:
    """The results files under ``results`` (a folder or one file) imported into a throwaway SQLite database,
    closed and deleted on leaving; raises what :func:`import_path` raises for a bad file."""
    with tempfile.TemporaryDirectory(prefix="invarbench-results-") as tmp:
        store = Store(f"sqlite:///{Path(tmp) / 'results.db'}")
        try:
            import_path(store, results)
            yield store
        finally:
            store.close()
