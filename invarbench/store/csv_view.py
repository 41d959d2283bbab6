"""The CSV view of stored runs: one row per (run, metric), for spreadsheets and quick comparisons.

It is a view, not an interchange format: it leaves out the per-example values and the artifacts, so it
cannot be imported (the JSON documents of :mod:`invarbench.store.documents` can).
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable
from typing import Any

from invarbench.store.codec import encode_floats
from invarbench.store.documents import _iso
from invarbench.store.provenance import PROVENANCE_FIELDS
from invarbench.store.schema import RunRecord

# CSV: the run and its model, then every provenance field that has a CSV column, then the times and the metric.
_CSV_HEAD = ("run_id", "run_uid", "card_id", "model_name", "training_method", "status", "flags")
_CSV_TAIL = ("started_at", "finished_at", "metric", "value", "stderr", "ci_low", "ci_high", "n")
CSV_COLUMNS = (*_CSV_HEAD, *(f.csv for f in PROVENANCE_FIELDS if f.csv is not None), *_CSV_TAIL)


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
