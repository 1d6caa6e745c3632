"""The tables: managed API keys, budget counters per period, and one usage row per request."""

from __future__ import annotations

from sqlalchemy import JSON, BigInteger, Boolean, Float, Index, Integer, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit identity.
RowId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    pass


class ApiKey(Base):
    """A managed key. Only the SHA-256 digest of its secret is kept, plus a masked hint."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    hint: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200), default="")
    admin: Mapped[bool] = mapped_column(Boolean, default=False)
    models: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    org: Mapped[str | None] = mapped_column(String(200), nullable=True)
    project: Mapped[str | None] = mapped_column(String(200), nullable=True)
    rpm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    ipm: Mapped[int | None] = mapped_column(Integer, nullable=True)
    budget_images: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    budget_megapixels: Mapped[float | None] = mapped_column(Float, nullable=True)
    budget_period: Mapped[str] = mapped_column(String(10), default="month")
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class BudgetUse(Base):
    """What a key has spent in one budget period ("2026-11", "2026-11-25" or "total")."""

    __tablename__ = "budget_use"

    key_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    period: Mapped[str] = mapped_column(String(10), primary_key=True)
    images: Mapped[int] = mapped_column(BigInteger, default=0)
    pixels: Mapped[int] = mapped_column(BigInteger, default=0)


class UsageRecord(Base):
    """One request that reached a model: who, what, how it ended, and what it cost."""

    __tablename__ = "usage_records"
    __table_args__ = (Index("ix_usage_records_created_at", "created_at"),)

    id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    request_id: Mapped[str] = mapped_column(String(64))
    api_key_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    org: Mapped[str | None] = mapped_column(String(200), nullable=True)
    project: Mapped[str | None] = mapped_column(String(200), nullable=True)
    model: Mapped[str] = mapped_column(String(200))
    operation: Mapped[str] = mapped_column(String(20))
    n: Mapped[int] = mapped_column(Integer)
    size: Mapped[str] = mapped_column(String(20))
    quality: Mapped[str] = mapped_column(String(20))
    status: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[int | None] = mapped_column(Integer, nullable=True)
    images: Mapped[int] = mapped_column(Integer, default=0)
    pixels: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    #: The moderation categories that refused it, comma-separated; null when not refused.
    moderation: Mapped[str | None] = mapped_column(String(400), nullable=True)
    #: The budget period charged (for the refund of a request that delivered nothing).
    charged_period: Mapped[str | None] = mapped_column(String(10), nullable=True)
    #: The end user the client named (`safety_identifier`, else `user`), for abuse monitoring.
    safety_identifier: Mapped[str | None] = mapped_column(String(256), nullable=True)
    #: The served model that answered, when not the one named (overflow, fallback), or the upstream's.
    served_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
