"""The key and usage database: SQLite by default, PostgreSQL by URL, migrated by Alembic."""

from __future__ import annotations

from .database import Database

__all__ = ["Database"]
