"""Alembic's environment: run on the connection (and in the transaction) that
:func:`invarbench.store.migrate.upgrade` opened and locked. There is no alembic.ini."""

from alembic import context

config = context.config
context.configure(
    connection=config.attributes["connection"],
    target_metadata=None,
    transactional_ddl=True,  # every step runs in the caller's one transaction (SQLite and PostgreSQL)
    render_as_batch=True,
    on_version_apply=config.attributes.get("on_version_apply", ()),
)
with context.begin_transaction():
    context.run_migrations()
