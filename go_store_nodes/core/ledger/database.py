"""The ledger's database plumbing: URLs, connection hooks, lock waits, migrations.

SQLite gets WAL, foreign keys, a bounded busy timeout and ledger-controlled ``BEGIN``;
PostgreSQL gets a bounded ``lock_timeout``; ``migrate`` runs the Alembic revisions in one
serialised transaction; ``is_retryable_database_error`` tells callers which failures may
succeed later.
"""

from pathlib import Path
import sqlite3
import threading
import time
from typing import Any, Optional, Union
import weakref

from alembic import command
from alembic.config import Config
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, Engine, make_url, URL
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from go_store_nodes.core.ledger.values import DatabaseUnavailableError

MIGRATIONS_DIR = Path(__file__).resolve().parent / 'migrations'
# Key of the PostgreSQL advisory lock taken while migrating ('gostore' in ASCII).
MIGRATION_LOCK_KEY = 0x676F73746F7265
_SQLITE_BEGIN_OPTION = 'go_store_ledger_sqlite_begin'
_SQLITE_BEGIN_MODES = ('DEFERRED', 'IMMEDIATE')
# Serialisation failure, deadlock, lock_timeout expired (PostgreSQL SQLSTATEs).
_TRANSIENT_SQLSTATES = ('40001', '40P01', '55P03')
_MIGRATION_LOCK = threading.Lock()
_HOOKED_ENGINES: 'weakref.WeakSet[Engine]' = weakref.WeakSet()


def alembic_config(connection: Optional[Connection] = None) -> Config:
    """Return an Alembic config for the ledger migrations (no alembic.ini needed)."""
    config = Config()
    config.set_main_option('script_location', str(MIGRATIONS_DIR))
    config.set_main_option('path_separator', 'os')
    if connection is not None:
        config.attributes['connection'] = connection
    return config


def migrate(engine: Engine, revision: str = 'head') -> None:
    """Upgrade the ledger schema of ``engine`` to ``revision`` in one transaction.

    Concurrent callers are serialised: in this process by a lock (Alembic's context is
    process-global), across processes by ``BEGIN IMMEDIATE`` on SQLite and an advisory
    lock on PostgreSQL, so the second caller finds the schema already at ``revision``.
    """
    if engine.dialect.name == 'sqlite':
        engine = engine.execution_options(**{_SQLITE_BEGIN_OPTION: 'IMMEDIATE'})
    with _MIGRATION_LOCK, engine.begin() as connection:
        if connection.dialect.name == 'postgresql':
            connection.execute(
                text('SELECT pg_advisory_xact_lock(:key)'), {'key': MIGRATION_LOCK_KEY})
        command.upgrade(alembic_config(connection), revision)


def normalise_url(url: Union[str, URL]) -> URL:
    """Return ``url`` with PostgreSQL pointed at the psycopg 3 driver."""
    parsed = make_url(url)
    if parsed.drivername in ('postgresql', 'postgres'):
        parsed = parsed.set(drivername='postgresql+psycopg')
    return parsed


def _enable_wal(cursor: Any, busy_timeout_ms: int) -> None:
    """Switch the database file to WAL (persistent), waiting out other processes' locks.

    Switching needs a moment with no other writer, and SQLite answers 'database is locked'
    at once instead of waiting: two nodes opening a new ledger together (gate and
    cart_ledger) would otherwise make one of them fail to start.
    """
    deadline = time.monotonic() + busy_timeout_ms / 1000.0
    delay_s = 0.01
    while True:
        try:
            mode = cursor.execute('PRAGMA journal_mode=WAL').fetchone()
            if mode and str(mode[0]).lower() == 'wal':
                return
        except sqlite3.OperationalError as error:
            if 'locked' not in str(error) or time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise sqlite3.OperationalError('could not switch the ledger database to WAL')
        time.sleep(delay_s)
        delay_s = min(delay_s * 2, 0.2)


def install_sqlite_hooks(engine: Engine, busy_timeout_ms: int) -> None:
    """Enable WAL, foreign keys and ledger-controlled BEGIN on a SQLite engine (once)."""
    if engine.dialect.name != 'sqlite' or engine in _HOOKED_ENGINES:
        return
    _HOOKED_ENGINES.add(engine)

    @event.listens_for(engine, 'connect')
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        # Let SQLAlchemy emit BEGIN itself so that reads are transactional too.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f'PRAGMA busy_timeout={int(busy_timeout_ms)}')
            cursor.execute('PRAGMA foreign_keys=ON')
            _enable_wal(cursor, busy_timeout_ms)
        finally:
            cursor.close()

    @event.listens_for(engine, 'begin')
    def _on_begin(connection: Connection) -> None:
        mode = connection.get_execution_options().get(_SQLITE_BEGIN_OPTION, 'DEFERRED')
        if mode not in _SQLITE_BEGIN_MODES:
            raise ValueError(f'bad SQLite BEGIN mode {mode!r}')
        connection.exec_driver_sql(f'BEGIN {mode}')

    # Connections opened before the hooks existed would miss the pragmas.
    engine.pool.dispose()


def install_postgres_hooks(engine: Engine, lock_timeout_ms: int) -> None:
    """Bound every lock wait of a PostgreSQL engine's sessions to ``lock_timeout_ms``."""
    if engine.dialect.name != 'postgresql' or engine in _HOOKED_ENGINES \
            or lock_timeout_ms <= 0:
        return
    _HOOKED_ENGINES.add(engine)

    @event.listens_for(engine, 'connect')
    def _on_connect(dbapi_connection: Any, connection_record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f'SET lock_timeout = {int(lock_timeout_ms)}')
        finally:
            cursor.close()
        dbapi_connection.commit()

    engine.pool.dispose()


def is_retryable_database_error(error: BaseException) -> bool:
    """Return True when the same work may succeed later (lock wait, server unreachable).

    Lock time-outs, deadlocks and serialisation failures, and every error of a connection
    that is down or was lost. Refusals (``LedgerError``), constraint violations and bugs
    are not retryable.
    """
    if isinstance(error, (OperationalError, InterfaceError)):
        return True
    if isinstance(error, DBAPIError) and error.connection_invalidated:
        return True
    return isinstance(error, (DatabaseUnavailableError, sqlite3.OperationalError))


def _is_transient(error: OperationalError) -> bool:
    """Return True for lock time-outs, deadlocks and serialisation failures."""
    sqlstate = getattr(error.orig, 'sqlstate', None)
    if sqlstate in _TRANSIENT_SQLSTATES:
        return True
    message = str(error.orig).lower()
    return 'database is locked' in message or 'database is busy' in message
