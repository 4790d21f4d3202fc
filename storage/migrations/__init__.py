"""Alembic migrations of the store's schema, run by `storage.schema` (no alembic.ini needed).

To add a revision after changing `storage/models.py`, point Alembic at a scratch database that is at
the current head (`Store.open("sqlite:///scratch.db")` makes one) and autogenerate, then read and
edit the new file in `versions/` and bump `SCHEMA_HEAD` in `storage/schema.py`:

    from alembic import command
    from storage.schema import alembic_config

    config = alembic_config()
    config.set_main_option("sqlalchemy.url", "sqlite:///scratch.db")
    command.revision(config, message="what changed", rev_id="0002", autogenerate=True)
"""
