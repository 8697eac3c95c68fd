"""Alembic migration environment of the go_store ledger."""
