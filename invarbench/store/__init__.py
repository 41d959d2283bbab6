"""The results store (an I/O edge): SQLite by default, PostgreSQL by URL."""

from invarbench.store.db import ResumedRun, Store, default_db_url
from invarbench.store.provenance import PROVENANCE_FIELDS, Provenance, ProvenanceField

__all__ = [
    "PROVENANCE_FIELDS",
    "Provenance",
    "ProvenanceField",
    "ResumedRun",
    "Store",
    "default_db_url",
]
