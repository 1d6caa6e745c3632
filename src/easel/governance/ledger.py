"""Budgets and usage records: a request's charge and its usage row are written in one transaction."""

from __future__ import annotations

import functools
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import Executable, String, Table, bindparam, exists, func, insert, literal, select, update
from sqlalchemy.engine import Connection

from .. import errors
from .db import Database
from .db.schema import BudgetUse, UsageRecord
from .keystore import LIVE, KeyInfo, Period

USAGE: Table = UsageRecord.__table__  # type: ignore[assignment]
BUDGET: Table = BudgetUse.__table__  # type: ignore[assignment]
#: The statements every request runs, built once (building one costs as much as running it).
UNLIMITED = 2**62
SPEND = (
    update(BUDGET)
    .where(BUDGET.c.key_id == bindparam("k"), BUDGET.c.period == bindparam("p"),
           BUDGET.c.images + bindparam("n") <= bindparam("max_n"),
           BUDGET.c.pixels + bindparam("px") <= bindparam("max_px"))
    .values(images=BUDGET.c.images + bindparam("n"), pixels=BUDGET.c.pixels + bindparam("px"))
)  # fmt: skip
REFUND = (
    update(BUDGET)
    .where(BUDGET.c.key_id == bindparam("k"), BUDGET.c.period == bindparam("p"))
    .values(images=BUDGET.c.images - bindparam("n"), pixels=BUDGET.c.pixels - bindparam("px"))
)
SPENT = select(BUDGET.c.images, BUDGET.c.pixels).where(
    BUDGET.c.key_id == bindparam("k"), BUDGET.c.period == bindparam("p")
)
OPEN_ROW = insert(USAGE)
CLOSE_ROW = (
    update(USAGE)
    .where(USAGE.c.id == bindparam("row"))
    .values(
        status=bindparam("st"),
        latency_ms=bindparam("ms"),
        images=bindparam("im"),
        pixels=bindparam("pxs"),
        # What only the end knows, where it is known: who answered, an upstream's real token counts.
        served_by=func.coalesce(bindparam("by", type_=String()), USAGE.c.served_by),
        input_tokens=func.coalesce(bindparam("it", type_=USAGE.c.input_tokens.type), USAGE.c.input_tokens),
        output_tokens=func.coalesce(bindparam("ot", type_=USAGE.c.output_tokens.type), USAGE.c.output_tokens),
    )
)


@dataclass(frozen=True)
class Entry:
    """What one request asked for, and who asked; the usage row is built from it."""

    request_id: str
    api_key_id: str | None
    org: str | None
    project: str | None
    model: str
    operation: str
    n: int
    size: str
    quality: str
    pixels: int
    input_tokens: int
    output_tokens: int
    safety_identifier: str | None = None
    served_by: str | None = None


#: The string columns an Entry fills, and their lengths: a longer value is cut to fit.
LENGTHS: dict[str, int] = {
    c.name: c.type.length
    for c in USAGE.c
    if isinstance(c.type, String) and c.type.length and c.name in Entry.__dataclass_fields__
}


@dataclass(frozen=True)
class Budget:
    """A key's allowance per period; None means unlimited."""

    key_id: str
    images: int | None
    megapixels: float | None
    period: Period

    @classmethod
    def of(cls, key: KeyInfo | None) -> Budget | None:
        if key is None or (key.budget_images is None and key.budget_megapixels is None):
            return None
        return cls(key.id, key.budget_images, key.budget_megapixels, key.budget_period)

    @property
    def pixels(self) -> int | None:
        return None if self.megapixels is None else int(self.megapixels * 1_000_000)


@dataclass(frozen=True)
class Charge:
    """What `charge` did: the pending usage row (if recording) and the budget period charged."""

    entry: Entry
    record_id: int | None
    key_id: str | None
    period: str | None

    @property
    def open(self) -> bool:
        """Whether `settle` has anything to write."""
        return self.record_id is not None or self.period is not None


@dataclass(frozen=True)
class Closing:
    """How a charged request ended: its status, latency and the images it delivered."""

    charge: Charge
    status: int
    latency_ms: int
    images: int
    #: The served model that answered, when it was decided after the charge (a fallback).
    served_by: str | None = None
    #: The real (input, output) tokens, when an upstream reported them.
    tokens: tuple[int, int] | None = None


@dataclass(frozen=True)
class Refusal:
    """A request refused before any work, and the moderation categories that refused it."""

    entry: Entry
    status: int
    moderation: tuple[str, ...] = ()


class StaleKeyError(LookupError):
    """The key to charge was revoked or rotated after its caller looked it up."""


def period_of(period: Period, now: float) -> str:
    """The budget period a moment falls in, in UTC."""
    if period == "total":
        return "total"
    return time.strftime("%Y-%m-%d" if period == "day" else "%Y-%m", time.gmtime(now))


class Ledger:
    """Budget counters and usage rows in the database; every method is one transaction.

    The per-request methods use Core statements on one connection: the ORM's unit of work
    cost more than the database did.
    """

    def __init__(self, db: Database, *, records: bool = True) -> None:
        self.db = db
        self.records = records

    def charge(self, entry: Entry, budget: Budget | None, key_digest: str | None = None) -> Charge:
        """Charge the budget (never past it, however many requests race) and open the usage row.

        With `key_digest`, the key is first confirmed live in the same transaction (StaleKeyError).
        On PostgreSQL the usual case is one statement, so one round trip; when it charges
        nothing, the general path below runs and says why.
        """
        if budget is None and not self.records and key_digest is None:
            return Charge(entry, None, None, None)
        now = time.time()
        period = period_of(budget.period, now) if budget else None
        params = _bounds(entry, budget, period, key_digest)
        pending = _row(entry, status=0, now=now, charged=period) if self.records else None
        if self.db.dialect == "postgresql":
            statement = _one_statement(key_digest is not None, budget is not None, pending is not None)
            columns = {f"u_{name}": value for name, value in (pending or {}).items()}
            with self.db.statements() as conn:
                found = conn.execute(statement, {**params, **columns}).first()
            if found is not None:
                return Charge(entry, int(found[0]) if pending else None, params["k"], period)
        with self.db.transaction() as conn:
            if key_digest is not None and conn.execute(LIVE, params).first() is None:
                raise StaleKeyError(entry.api_key_id)
            if budget is not None and period is not None:
                self._spend(conn, budget, period, entry, params)
            record_id = None
            if pending is not None:
                inserted = conn.execute(OPEN_ROW, pending)
                record_id = int(inserted.inserted_primary_key[0])  # type: ignore[index]
        return Charge(entry, record_id, params["k"], period)

    def settle(self, charge: Charge, status: int, latency_ms: int, images: int) -> None:
        """Close one usage row now; see `write`."""
        self.write([Closing(charge, status, latency_ms, images)], ())

    def record(self, entry: Entry, status: int, *, moderation: Sequence[str] = ()) -> None:
        """A usage row for a request refused before any work, written now; see `write`."""
        self.write((), [Refusal(entry, status, tuple(moderation))])

    def write(self, closings: Sequence[Closing], refusals: Sequence[Refusal]) -> None:
        """In one transaction: close usage rows, giving back to the budget the images they did
        not deliver, and add the rows of refused requests (moderation, rate limit, budget)."""
        closed, refunds = [], []
        for closing in closings:
            charge, images = closing.charge, closing.images
            share = charge.entry.pixels // max(1, charge.entry.n)
            if charge.record_id is not None:
                tokens = closing.tokens or (None, None)
                closed.append({"row": charge.record_id, "st": closing.status, "ms": closing.latency_ms,
                               "im": images, "pxs": share * images, "by": closing.served_by,
                               "it": tokens[0], "ot": tokens[1]})  # fmt: skip
            unused = charge.entry.n - images
            if charge.period is not None and unused > 0:
                refunds.append({"k": charge.key_id, "p": charge.period, "n": unused, "px": share * unused})
        now = time.time()
        rows = [
            _row(r.entry, status=r.status, now=now, charged=None, refused=",".join(r.moderation) or None)
            for r in refusals
        ]
        if not self.records:
            closed = rows = []
        if not (closed or refunds or rows):
            return
        with self.db.transaction() as conn:
            for statement, params in ((CLOSE_ROW, closed), (REFUND, refunds), (OPEN_ROW, rows)):
                if params:
                    conn.execute(statement, params)

    def spent(self, key_id: str, period: str) -> tuple[int, int]:
        """Images and pixels a key has spent in a period."""
        with self.db.transaction() as conn:
            row = conn.execute(SPENT, {"k": key_id, "p": period}).first()
            return (int(row[0]), int(row[1])) if row else (0, 0)

    def _spend(
        self, conn: Connection, budget: Budget, period: str, entry: Entry, spend: dict[str, Any]
    ) -> None:
        # One conditional UPDATE: the database serialises racing charges on the row, and each
        # re-checks the condition against the committed total, so nobody overshoots.
        if conn.execute(SPEND, spend).rowcount == 1:
            return
        used = conn.execute(SPENT, spend).first()
        if used is None:  # the period's first charge: open its row, then charge it the same way
            insert_ignore = _insert_ignore(self.db.dialect)
            conn.execute(insert_ignore(BUDGET).values(key_id=budget.key_id, period=period, images=0, pixels=0)
                         .on_conflict_do_nothing())  # fmt: skip
            if conn.execute(SPEND, spend).rowcount == 1:
                return
            used = conn.execute(SPENT, spend).first()
        images, pixels = (int(used[0]), int(used[1])) if used else (0, 0)
        span = {"day": "today", "month": "this month", "total": "in total"}[budget.period]
        later = "" if budget.period == "total" else ", or wait for the next period"
        parts = []
        if budget.images is not None:
            parts.append(f"{images} of {budget.images} images")
        if budget.megapixels is not None:
            parts.append(f"{pixels / 1e6:.2f} of {budget.megapixels:g} megapixels")
        raise errors.InsufficientQuotaError(
            f"You exceeded the budget of API key {budget.key_id}: it has used {' and '.join(parts)} "
            f"{span}, and this request needs {entry.n} image{'s' if entry.n != 1 else ''} "
            f"({entry.pixels / 1e6:.2f} megapixels). Ask the operator to raise the budget{later}."
        )


def _bounds(
    entry: Entry, budget: Budget | None, period: str | None, key_digest: str | None
) -> dict[str, Any]:
    """What the charging statements bind besides the pending row: the key to confirm (`d`), the
    budget (`k`, `p`), the amounts and their bounds. (The one-statement charge also binds the
    row's columns, each as `u_<column>`.)"""
    return {
        "d": key_digest, "k": budget.key_id if budget else None, "p": period,
        "n": entry.n, "px": entry.pixels,
        "max_n": UNLIMITED if budget is None or budget.images is None else budget.images,
        "max_px": UNLIMITED if budget is None or budget.pixels is None else budget.pixels,
    }  # fmt: skip


def _row(
    entry: Entry, *, status: int, now: float, charged: str | None, refused: str | None = None
) -> dict[str, Any]:
    """A usage row: pending (status 0) when charged, else a refusal that cost nothing."""
    pending = status == 0
    row = asdict(entry)  # its fields are the row's columns
    for name, length in LENGTHS.items():  # a value too long for its column must not fail a batch
        if row[name] is not None and len(row[name]) > length:
            row[name] = row[name][:length]
    row.update(created_at=int(now), status=status, latency_ms=None if pending else 0, images=0,
               moderation=refused, charged_period=charged)  # fmt: skip
    if not pending:  # a refusal rendered nothing
        row.update(pixels=0, output_tokens=0)
    return row


@functools.cache
def _one_statement(confirm: bool, spend: bool, record: bool) -> Executable:
    """PostgreSQL's charge in one statement: confirm the key, take the budget, insert the pending
    row, each step only if the ones before succeeded. It returns a row only if all did.

    Data-modifying CTEs run once and to completion, and the conditional UPDATE re-checks its
    bounds after waiting on a racing charge, so this never overshoots either.
    """
    ctes = []
    conditions = []
    if confirm:
        live = LIVE.cte("live")
        ctes.append(live)
        conditions.append(exists(live.select()))
    if spend:
        spent = SPEND.where(*conditions).returning(BUDGET.c.key_id).cte("spent")
        ctes.append(spent)
        conditions.append(exists(spent.select()))
    if not record:
        return select(literal(1)).where(*conditions).add_cte(*ctes)
    columns = [c for c in USAGE.c if not c.primary_key]
    values = select(*[bindparam(f"u_{c.name}", type_=c.type) for c in columns]).where(*conditions)
    return insert(USAGE).from_select([c.name for c in columns], values).returning(USAGE.c.id).add_cte(*ctes)


def _insert_ignore(dialect: str) -> Any:
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if dialect == "postgresql" else sqlite.insert
