"""Database: the engine for a URL, sessions, and `upgrade()` to the newest schema through Alembic."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, event, inspect
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = "easel.governance.db:migrations"


def sqlite_url(data_dir: Path) -> str:
    """The embedded default: `easel.db` in the data directory."""
    return f"sqlite:///{data_dir / 'easel.db'}"


class Database:
    """One engine and session factory per URL; the schema is brought up to date on `upgrade()`."""

    def __init__(self, url: str) -> None:
        self.url = url
        options: dict[str, Any] = {}
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            # SQLite has one writer at a time, and its busy handler waits by sleeping in growing
            # steps: under contention that cost 20 ms a request. One pooled connection queues this
            # process's transactions on a condition variable instead; the busy timeout is left
            # for other processes (the CLI, a second server).
            options.update(pool_size=1, max_overflow=0, pool_timeout=60)
            options["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            # No pre-ping: it costs a round trip per transaction. A connection the server dropped
            # fails one transaction and the pool reconnects; recycling keeps them fresh.
            # Transactions are the rarer path, so this pool is the smaller one (see `statements`).
            options.update(pool_size=4, max_overflow=16, pool_recycle=1800)
        self.engine: Engine = create_engine(url, **options)
        if self.engine.dialect.name == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
            self._autocommit = self.engine
        else:
            # A transaction costs a round trip to BEGIN and one to COMMIT around its statements;
            # a statement that commits on its own costs one. Its pool is separate: switching a
            # pooled connection between the modes cost 0.05 ms a checkout.
            options.update(pool_size=10, max_overflow=30)
            self._autocommit = create_engine(url, isolation_level="AUTOCOMMIT", **options)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._upgraded = False
        self._lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def upgrade(self) -> None:
        """Apply any migrations not yet applied (once per process; safe to call again)."""
        if self._upgraded:
            return
        with self._lock:
            if self._upgraded:
                return
            from alembic import command
            from alembic.config import Config
            from alembic.runtime.migration import MigrationContext
            from alembic.script import ScriptDirectory

            config = Config()
            config.set_main_option("script_location", MIGRATIONS)
            head = ScriptDirectory.from_config(config).get_current_head()
            with self.engine.begin() as connection:
                current = MigrationContext.configure(connection).get_current_revision()
                if current != head:
                    config.attributes["connection"] = connection
                    command.upgrade(config, "head")
            self._upgraded = True

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A Core connection in a transaction: the lean path every request takes."""
        self.upgrade()
        with self.engine.begin() as connection:
            yield connection

    @contextmanager
    def statements(self) -> Iterator[Connection]:
        """A connection on which each statement commits on its own: one round trip apiece on a
        server. SQLite, which has no round trips to save, gets a transaction."""
        self.upgrade()
        with self._autocommit.begin() as connection:
            yield connection

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose transaction commits when the block ends (rolls back on error)."""
        self.upgrade()
        with self._sessions.begin() as session:
            yield session

    def tables(self) -> set[str]:
        return set(inspect(self.engine).get_table_names())

    def close(self) -> None:
        self.engine.dispose()
        self._autocommit.dispose()


def _sqlite_pragmas(connection: Any, _: Any) -> None:
    cursor = connection.cursor()
    # WAL lets readers run beside the one writer; NORMAL syncs at checkpoints, not every commit.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
