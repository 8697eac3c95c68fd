"""Alembic environment of the go_store ledger.

Run programmatically through ``go_store_nodes.core.ledger.ledger.migrate`` (no alembic.ini):
the caller puts an open SQLAlchemy ``Connection`` in ``config.attributes['connection']``.
A ``sqlalchemy.url`` main option is honoured too, for ad-hoc command line use.
"""

from alembic import context
from sqlalchemy import create_engine, pool
from sqlalchemy.engine import Connection

from go_store_nodes.core.ledger.models import Base

config = context.config
target_metadata = Base.metadata


def _configure_and_run(connection: Connection) -> None:
    """Run the migrations on an open connection."""
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == 'sqlite',
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the migration SQL for a URL without connecting."""
    context.configure(
        url=config.get_main_option('sqlalchemy.url'),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={'paramstyle': 'named'},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on one made from the URL."""
    connection = config.attributes.get('connection')
    if connection is not None:
        _configure_and_run(connection)
        return
    url = config.get_main_option('sqlalchemy.url')
    if not url:
        raise ValueError('ledger migrations need a connection or a sqlalchemy.url option')
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as new_connection:
            _configure_and_run(new_connection)
            new_connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
