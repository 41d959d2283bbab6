"""A run's provenance: everything that produced its numbers, as one frozen dataclass.

:class:`Provenance` is the one list of these fields. Each field is a column of the ``runs``
table with the same name (``schema.py``; a test checks both ways), and carries a
:class:`ProvenanceField` in its metadata that says what the rest of invarbench does with it:

- ``label``: how ``results show``, ``results compare`` and the site name it;
- ``resume``: whether ``--resume`` continues only a run with an equal value;
- ``site``: whether the site shows it in a run's provenance line (beside the run id);
- ``json`` and ``since``: its key in the ``run`` object of the JSON interchange format, and the
  format version that added it (a document of an older version has no such key);
- ``csv``: its column in the CSV export, or None for none;
- ``absent``: how a NULL reads (``{dataset}`` stands for the run's data set);
- ``listed``: whether ``results show`` and ``results compare`` give it a row of its own.

The JSON export and import, the CSV export, ``results show``, ``results compare``, the
resume matching and the site loop over :data:`PROVENANCE_FIELDS`; a new field is added here, as
a column in ``schema.py`` and in a new migration, and nowhere else.
"""

from __future__ import annotations

import json
import typing
from dataclasses import dataclass, field, fields
from typing import Any

_KEY = "invarbench.provenance"


@dataclass(frozen=True)
class ProvenanceField:
    """What invarbench does with one field of :class:`Provenance` (see the module's docstring)."""

    name: str  # the attribute, and the ``runs`` column
    label: str
    resume: bool
    site: bool
    json: str
    since: int
    csv: str | None
    absent: str
    listed: bool
    nullable: bool  # its type admits None (and its column is nullable)

    def value(self, source: Any) -> Any:
        """This field's value in ``source``: a :class:`Provenance`, a ``RunRecord`` or anything with the attribute."""
        return getattr(source, self.name)

    def text(self, source: Any) -> str:
        """This field's value in ``source`` as ``results show`` writes it: ``absent`` for None."""
        value = self.value(source)
        if value is None:
            return self.absent.format(dataset=getattr(source, "dataset", ""))
        if isinstance(value, (dict, list)):
            return json.dumps(value, sort_keys=True, separators=(",", ":"))
        return str(value)


def _field(
    label: str,
    *,
    resume: bool = True,
    site: bool = False,
    since: int = 1,
    json_name: str | None = None,
    csv: str | bool = True,
    absent: str = "–",
    listed: bool = True,
) -> Any:
    meta = {
        "label": label,
        "resume": resume,
        "site": site,
        "since": since,
        "json": json_name,
        "csv": csv,
        "absent": absent,
        "listed": listed,
    }
    return field(metadata={_KEY: meta})


@dataclass(frozen=True, kw_only=True)
class Provenance:
    """Everything that produced a run's numbers, as stored with the run (``runs`` columns of the same names).

    The fields are in the order of the JSON interchange format's ``run`` object: those of format
    version 1, then those each later version added. Every field must be given (None where a value is
    unknown); build one from a stored run with :meth:`of`.
    """

    suite_name: str = _field("suite")
    suite_version: int = _field("suite version")
    dataset: str = _field("dataset")
    seed: int = _field("seed")
    batch_size: int = _field("batch size")
    examples_requested: int = _field("examples requested")
    examples_effective: int = _field("examples evaluated")
    device: str = _field("device", site=True)
    invarbench_version: str = _field("invarbench")
    git_commit: str | None = _field("git commit", absent="unknown")
    torch_version: str = _field("torch")
    # format version 2
    # The suite version's full number of examples (its num_examples); a run over fewer is a smoke run.
    suite_num_examples: int | None = _field("examples in the suite", since=2, absent="not recorded")
    # None: the data set's own test split; else the custom evaluation set, "npz:<path> sha256:<digest>".
    data_source: str | None = _field("data", since=2, absent="the {dataset} test split")
    # The floating dtype the model computes in: "float32", "float16" or "bfloat16".
    model_dtype: str | None = _field("model dtype", site=True, since=2, absent="not recorded")
    # format version 3
    # sha256 (hex) of the suite's resolved settings, Suite.settings_hash(): what --resume matches.
    suite_settings_hash: str | None = _field("suite settings hash", since=3, absent="not recorded")
    # The suite's resolved settings, Suite.settings(): what the hash is of. Its hash stands for it in the
    # resume matching and the CSV; results compare names the settings that differ.
    suite_settings: dict[str, Any] | None = _field(
        "suite settings", resume=False, since=3, csv=False, absent="not recorded", listed=False
    )
    # format version 4
    # The data digest of the examples evaluated, "v1:<sha256 hex>" of their uint8 images and int64 labels in
    # order (invarbench.data.digests; docs/datasets.md): equal to the suite's expected digest, the run is on the
    # official split whatever file it read.
    data_digest: str | None = _field("data digest", since=4, absent="not recorded")

    @classmethod
    def of(cls, run: Any) -> Provenance:
        """The provenance of a stored run (a ``RunRecord``, or anything with these attributes)."""
        return cls(**{f.name: getattr(run, f.name) for f in PROVENANCE_FIELDS})

    def values(self) -> dict[str, Any]:
        """Field name -> value, in field order: the ``runs`` columns a new run is stored with."""
        return {f.name: getattr(self, f.name) for f in PROVENANCE_FIELDS}


def _described(cls: type) -> tuple[ProvenanceField, ...]:
    hints = typing.get_type_hints(cls)
    out = []
    for f in fields(cls):
        meta = f.metadata[_KEY]
        csv = meta["csv"]
        out.append(
            ProvenanceField(
                name=f.name,
                label=meta["label"],
                resume=meta["resume"],
                site=meta["site"],
                json=meta["json"] or f.name,
                since=meta["since"],
                csv=f.name if csv is True else (csv or None),
                absent=meta["absent"],
                listed=meta["listed"],
                nullable=type(None) in typing.get_args(hints[f.name]),
            )
        )
    return tuple(out)


PROVENANCE_FIELDS: tuple[ProvenanceField, ...] = _described(Provenance)
