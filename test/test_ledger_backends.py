"""Ledger database back ends: the helpers every ledger test uses, and schema tests.

Each ledger test runs on SQLite (a file in tmp_path) and on PostgreSQL when the env var
GO_STORE_TEST_POSTGRES_URL names a server (e.g. postgresql+psycopg://user@127.0.0.1:55432/db);
every PostgreSQL test gets a fresh schema of its own, dropped afterwards.
"""

from contextlib import contextmanager
import os
from pathlib import Path
from typing import Iterator, Optional
import uuid

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from go_store_nodes.core.ledger import Ledger, LedgerConfig
from go_store_nodes.core.ledger.ledger import alembic_config, normalise_url
from go_store_nodes.core.ledger.models import Base

POSTGRES_ENV = 'GO_STORE_TEST_POSTGRES_URL'
S = 1_000_000_000
T0 = 1_800_000_000 * S
CATALOG = {'apple': 120, 'milk': 99, 'bread': 250, 'gum': 75}
CONFIG = LedgerConfig(grace_period_ns=30 * S, currency='EUR', evidence_retention_days=7)

BACKENDS = [
    pytest.param('sqlite', id='sqlite'),
    pytest.param('postgresql', id='postgresql', marks=pytest.mark.skipif(
        not os.environ.get(POSTGRES_ENV),
        reason=f'{POSTGRES_ENV} is not set: PostgreSQL ledger tests skipped')),
]


class Backend:
    """One empty test database; hands out engines on it and disposes them at the end."""

    def __init__(self, name: str, tmp_path: Path) -> None:
        """Create the database (a file, or a PostgreSQL schema)."""
        self.name = name
        self._engines: list[Engine] = []
        self._schema: Optional[str] = None
        self._admin: Optional[Engine] = None
        if name == 'sqlite':
            self.url = f'sqlite:///{tmp_path / "ledger.db"}'
        else:
            self.url = normalise_url(os.environ[POSTGRES_ENV]).render_as_string(
                hide_password=False)
            self._schema = f'ledger_test_{uuid.uuid4().hex[:12]}'
            self._admin = create_engine(self.url, isolation_level='AUTOCOMMIT')
            with self._admin.connect() as connection:
                connection.execute(text(f'CREATE SCHEMA {self._schema}'))

    def new_engine(self) -> Engine:
        """Return a new engine (a new 'process') on the test database."""
        if self._schema is None:
            engine = create_engine(self.url)
        else:
            engine = create_engine(
                self.url, connect_args={'options': f'-csearch_path={self._schema}'})
        self._engines.append(engine)
        return engine

    def new_ledger(self, config: LedgerConfig = CONFIG, **kwargs: object) -> Ledger:
        """Return a ledger on a new engine, migrated."""
        return Ledger(self.new_engine(), config, CATALOG, **kwargs)  # type: ignore[arg-type]

    def close(self) -> None:
        """Dispose every engine and drop the PostgreSQL schema."""
        for engine in self._engines:
            engine.dispose()
        if self._admin is not None:
            with self._admin.connect() as connection:
                connection.execute(text(f'DROP SCHEMA {self._schema} CASCADE'))
            self._admin.dispose()


@contextmanager
def open_backend(name: str, tmp_path: Path) -> Iterator[Backend]:
    """Yield a fresh test database of the named kind."""
    backend = Backend(name, tmp_path)
    try:
        yield backend
    finally:
        backend.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    with open_backend(request.param, tmp_path) as opened:
        yield opened


def test_migrated_schema_matches_the_models(backend: Backend) -> None:
    ledger = backend.new_ledger()
    with ledger.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={'compare_type': True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []
    tables = set(inspect(ledger.engine).get_table_names())
    assert {table.name for table in Base.metadata.sorted_tables} <= tables
    assert 'alembic_version' in tables


def test_migration_is_idempotent_and_reversible(backend: Backend) -> None:
    engine = backend.new_engine()
    Ledger(engine, CONFIG, CATALOG)
    Ledger(engine, CONFIG, CATALOG)  # a second start finds the schema at head
    with engine.connect() as connection:
        assert connection.execute(text('SELECT version_num FROM alembic_version')).scalar() \
            == '0003'

    def event_id_nullable() -> bool:
        return next(c['nullable'] for c in inspect(engine).get_columns('review_items')
                    if c['name'] == 'event_id')

    assert event_id_nullable()
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), '0002')
    assert not event_id_nullable()
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), '0001')
    columns = {c['name'] for c in inspect(engine).get_columns('receipts')}
    assert 'published_at_ns' not in columns
    Ledger(engine, CONFIG, CATALOG)  # upgrades 0001 -> head
    columns = {c['name'] for c in inspect(engine).get_columns('receipts')}
    assert 'published_at_ns' in columns and event_id_nullable()
    with engine.begin() as connection:
        command.downgrade(alembic_config(connection), 'base')
    assert 'visits' not in inspect(engine).get_table_names()
    ledger = Ledger(engine, CONFIG, CATALOG)
    assert ledger.register_account('acct-1', T0)
    assert 'visits' in inspect(engine).get_table_names()


def test_foreign_keys_are_enforced(backend: Backend) -> None:
    ledger = backend.new_ledger()
    with pytest.raises(IntegrityError):
        with ledger.engine.begin() as connection:
            connection.execute(text(
                "INSERT INTO cart_lines (visit_id, sku, quantity, unit_price_cents) "
                "VALUES ('no-such-visit', 'apple', 1, 120)"))


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    with open_backend('sqlite', tmp_path) as sqlite:
        ledger = sqlite.new_ledger()
        with ledger.engine.connect() as connection:
            assert connection.exec_driver_sql('PRAGMA journal_mode').scalar() == 'wal'
            assert connection.exec_driver_sql('PRAGMA foreign_keys').scalar() == 1


def test_ledger_accepts_a_url_and_closes(tmp_path: Path) -> None:
    ledger = Ledger(f'sqlite:///{tmp_path / "by_url.db"}', CONFIG, CATALOG)
    assert ledger.register_account('acct-1', T0)
    assert ledger.account_exists('acct-1')
    ledger.close()


def test_postgres_urls_use_psycopg3() -> None:
    assert normalise_url('postgresql://u@127.0.0.1/db').drivername == 'postgresql+psycopg'
    assert normalise_url('postgresql+psycopg://u@h/db').drivername == 'postgresql+psycopg'
    assert normalise_url('sqlite:///x.db').drivername == 'sqlite'


@pytest.mark.parametrize('kwargs', [
    {'grace_period_ns': -1},
    {'currency': 'euro'},
    {'currency': 'eur'},
    {'evidence_retention_days': 0},
    {'review_below_confidence': 1.5},
    {'max_quantity_delta': 0},
    {'max_write_retries': -1},
    {'sqlite_busy_timeout_ms': -5},
])
def test_config_rejects_bad_values(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        LedgerConfig(**kwargs)  # type: ignore[arg-type]
