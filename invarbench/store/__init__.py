"""The results store (an I/O edge): SQLite by default, PostgreSQL by URL."""

from invarbench.store.db import ResumedRun, RunProvenance, Store, default_db_url

__all__ = ["ResumedRun", "RunProvenance", "Store", "default_db_url"]
