"""Alembic migrations of the key and usage database (applied by `Database.upgrade`)."""
