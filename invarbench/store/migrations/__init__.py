"""The store's schema migrations (Alembic scripts, run by :mod:`invarbench.store.migrate`).

Append-only: a released migration is never edited; a schema change adds the next numbered
file in ``versions/`` (revision ``"000N"``, ``down_revision`` the previous one) and updates
``invarbench/store/schema.py`` to match. ``tests/test_migrations.py`` checks that they agree.
"""
