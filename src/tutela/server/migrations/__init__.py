"""Alembic migrations of the coordinator store (run by :func:`tutela.server.store.migrate`)."""
