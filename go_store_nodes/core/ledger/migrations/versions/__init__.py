"""Alembic revisions of the go_store ledger schema."""
