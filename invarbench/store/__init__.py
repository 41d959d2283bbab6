"""The results store (an I/O edge): SQLite by default, PostgreSQL by URL."""

from invarbench.store.db import Store
from invarbench.store.engine import default_db_url
from invarbench.store.provenance import PROVENANCE_FIELDS, Provenance, ProvenanceField
from invarbench.store.runs import ResumedRun
from invarbench.store.schema import ModelSnapshot

__all__ = [
    "PROVENANCE_FIELDS",
    "ModelSnapshot",
    "Provenance",
    "ProvenanceField",
    "ResumedRun",
    "Store",
    "default_db_url",
]
