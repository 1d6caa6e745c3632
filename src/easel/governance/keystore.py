"""Managed API keys in the database: create (the secret is shown once), list, revoke, rotate, look up."""

from __future__ import annotations

import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from sqlalchemy import Table, bindparam, select
from sqlalchemy.engine import Connection

from .db import Database
from .db.schema import ApiKey
from .keys import digest, mask

PREFIX = "sk-easel-"
KEYS: Table = ApiKey.__table__  # type: ignore[assignment]
FIND = select(KEYS).where(KEYS.c.digest == bindparam("digest"))  # built once: it runs per request
#: A key is live while its secret is current and it is not revoked (the gate confirms this).
LIVE = select(KEYS.c.id).where(KEYS.c.digest == bindparam("d"), KEYS.c.revoked_at.is_(None))
Period = Literal["day", "month", "total"]
PERIODS: tuple[Period, ...] = ("day", "month", "total")


class KeyNotFoundError(LookupError):
    """No managed key has that id."""


@dataclass(frozen=True)
class KeyInfo:
    """A managed key as shown to operators: everything but the secret, which is never stored."""

    id: str
    name: str
    hint: str
    admin: bool
    models: tuple[str, ...] | None
    org: str | None
    project: str | None
    rpm: int | None
    ipm: int | None
    budget_images: int | None
    budget_megapixels: float | None
    budget_period: Period
    created_at: int
    revoked_at: int | None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_json(self) -> dict[str, Any]:
        body = asdict(self)
        body["models"] = list(self.models) if self.models is not None else None
        return {"object": "api_key", **body}


@dataclass(frozen=True)
class KeySpec:
    """What a new key may do; every limit is optional."""

    name: str = ""
    admin: bool = False
    models: Sequence[str] | None = None
    org: str | None = None
    project: str | None = None
    rpm: int | None = None
    ipm: int | None = None
    budget_images: int | None = None
    budget_megapixels: float | None = None
    budget_period: Period = "month"


class KeyStore:
    """The managed keys of one database. Only SHA-256 digests of the secrets are kept.

    Secrets carry 256 random bits, so a fast hash is enough: nobody can guess one from its
    digest, and a lookup costs microseconds on every request.
    """

    #: How long "no image key exists" is believed before the database is asked again.
    NO_KEYS_TTL = 1.0
    #: How many live image keys `cached` remembers (least recently used go first).
    CACHE_SIZE = 10_000

    def __init__(self, db: Database) -> None:
        self.db = db
        # Keys are revoked, never deleted: once one exists, image requests need a key for good.
        self._keys_seen = False
        self._no_keys_until = 0.0
        # A key's row never changes but for its revocation or rotation, which the gate confirms
        # against the database in the statement that charges the request.
        self._cache: OrderedDict[str, KeyInfo] = OrderedDict()
        self._lock = threading.Lock()

    def create(self, spec: KeySpec) -> tuple[KeyInfo, str]:
        """A new key and its secret; the secret is returned here and never again."""
        secret = _new_secret()
        limits = asdict(spec)  # the spec's fields are the row's columns
        limits["models"] = list(spec.models) if spec.models is not None else None
        row = ApiKey(
            id=f"key_{secrets.token_hex(12)}",
            digest=digest(secret).hex(),
            hint=mask(secret),
            created_at=int(time.time()),
            revoked_at=None,
            **limits,
        )
        with self.db.session() as session:
            session.add(row)
            session.flush()
        self._keys_seen |= not spec.admin
        return _info(row), secret

    def list(self, *, include_revoked: bool = True) -> list[KeyInfo]:
        with self.db.session() as session:
            query = select(ApiKey).order_by(ApiKey.created_at, ApiKey.id)
            if not include_revoked:
                query = query.where(ApiKey.revoked_at.is_(None))
            return [_info(row) for row in session.scalars(query)]

    def get(self, key_id: str) -> KeyInfo:
        with self.db.session() as session:
            return _info(self._row(session, key_id))

    def revoke(self, key_id: str) -> KeyInfo:
        """Revoked at once for every process sharing the database: every request's charge
        confirms its key is live."""
        with self.db.session() as session:
            row = self._row(session, key_id)
            if row.revoked_at is None:
                row.revoked_at = int(time.time())
        self._forget_id(key_id)
        return _info(row)

    def rotate(self, key_id: str) -> tuple[KeyInfo, str]:
        """A new secret for the same key (limits, budget and usage carry on); the old one stops."""
        secret = _new_secret()
        with self.db.session() as session:
            row = self._row(session, key_id)
            if row.revoked_at is not None:
                raise KeyNotFoundError(f"key {key_id} is revoked; create a new one instead")
            row.digest = digest(secret).hex()
            row.hint = mask(secret)
        self._forget_id(key_id)
        return _info(row), secret

    def find(self, presented: str) -> tuple[KeyInfo | None, bool]:
        """The key whose secret this is (revoked or not), and whether image requests need a key."""
        return self.lookup(digest(presented).hex())

    def lookup(self, probe: str) -> tuple[KeyInfo | None, bool]:
        """`find` by the secret's hex digest; a live image key is remembered for `cached`."""
        with self.db.statements() as conn:  # Core, not the ORM: this runs on every request
            row = conn.execute(FIND, {"digest": probe}).first()
            found = _info(row) if row is not None and hmac.compare_digest(row.digest, probe) else None
            if found is not None and found.active and not found.admin:
                self._keys_seen = True
                with self._lock:
                    self._cache[probe] = found
                    if len(self._cache) > self.CACHE_SIZE:
                        self._cache.popitem(last=False)
                return found, True
            return found, self._any_keys(conn)

    def cached(self, probe: str) -> KeyInfo | None:
        """The live image key with this digest as last looked up here, if remembered. It may
        since have been revoked or rotated: whoever uses it must confirm it (see `LIVE`)."""
        with self._lock:
            found = self._cache.get(probe)
            if found is not None:
                self._cache.move_to_end(probe)
            return found

    def forget(self, probe: str) -> None:
        """Drop a remembered key (found revoked or rotated)."""
        with self._lock:
            self._cache.pop(probe, None)

    def _forget_id(self, key_id: str) -> None:
        with self._lock:
            for probe in [p for p, info in self._cache.items() if info.id == key_id]:
                del self._cache[probe]

    def any_keys(self) -> bool:
        """Whether image requests need a key: some image key was ever created. Revoking the last
        one must not reopen the server."""
        known = self.known_any_keys()
        if known is not None:
            return known
        with self.db.statements() as conn:
            return self._any_keys(conn)

    def known_any_keys(self) -> bool | None:
        """`any_keys` without the database when the answer is known (None: ask it).

        "None yet" is believed for NO_KEYS_TTL, so an open server spends no query per request,
        and a key created by another process takes effect within that time.
        """
        if self._keys_seen:
            return True
        return False if time.monotonic() < self._no_keys_until else None

    def _any_keys(self, conn: Connection) -> bool:
        query = select(KEYS.c.id).where(KEYS.c.admin.is_(False)).limit(1)
        found = conn.execute(query).first() is not None
        if found:
            self._keys_seen = True
        else:
            self._no_keys_until = time.monotonic() + self.NO_KEYS_TTL
        return found

    @staticmethod
    def _row(session: Any, key_id: str) -> ApiKey:
        row: ApiKey | None = session.get(ApiKey, key_id)
        if row is None:
            raise KeyNotFoundError(f"no key has the id {key_id!r}")
        return row


def _new_secret() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def _info(row: Any) -> KeyInfo:
    """A KeyInfo from an ORM row or a Core row (both have the columns as attributes)."""
    return KeyInfo(
        id=row.id,
        name=row.name,
        hint=row.hint,
        admin=row.admin,
        models=tuple(row.models) if row.models is not None else None,
        org=row.org,
        project=row.project,
        rpm=row.rpm,
        ipm=row.ipm,
        budget_images=row.budget_images,
        budget_megapixels=row.budget_megapixels,
        budget_period=row.budget_period,
        created_at=row.created_at,
        revoked_at=row.revoked_at,
    )
