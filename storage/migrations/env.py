"""Alembic environment: runs the revisions on the connection `storage.schema` hands over."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from storage.models import Base
from storage.schema import VERSION_TABLE, owns_table


def _include_name(name: str | None, type_: str, parent_names: object) -> bool:
    # Optuna's tables share the database: autogenerate must neither see nor drop them.
    return type_ != "table" or owns_table(name or "")


def _run(connection: object) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        include_name=_include_name,
        render_as_batch=True,  # SQLite can only alter tables by copying them
    )
    with context.begin_transaction():
        context.run_migrations()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
else:  # writing a new revision: see storage/migrations/__init__.py
    with create_engine(context.config.get_main_option("sqlalchemy.url")).begin() as own_connection:
        _run(own_connection)
