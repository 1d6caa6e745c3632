"""Keys, budgets and usage rows on SQLite and on a real PostgreSQL: lifecycle, hashing, no overshoot."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import event, select, text
from sqlalchemy.engine import Engine

from easel.errors import InsufficientQuotaError
from easel.governance.db import Database
from easel.governance.db.schema import Base, UsageRecord
from easel.governance.keys import digest
from easel.governance.keystore import KeySpec, KeyStore
from easel.governance.ledger import Budget, Entry, Ledger, StaleKeyError, period_of
from easel.governance.report import images_usage
from tests.backing import Postgres


def entry(n: int = 1, key: str | None = None, model: str = "gpt-image-1", request: str = "req") -> Entry:
    return Entry(request_id=request, api_key_id=key, org=None, project=None, model=model,
                 operation="generations", n=n, size="256x256", quality="medium",
                 pixels=n * 256 * 256, input_tokens=3, output_tokens=272 * n)  # fmt: skip


def test_migrations_build_exactly_the_models(db: Database) -> None:
    with db.engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    db.upgrade()  # a second call (and a second process) finds nothing to do
    assert {"api_keys", "budget_use", "usage_records", "alembic_version"} <= db.tables()


def test_key_lifecycle_and_only_digests_are_stored(db: Database) -> None:
    store = KeyStore(db)
    info, secret = store.create(KeySpec(name="app", models=["gpt-image-1"], rpm=5, budget_images=10))
    assert secret.startswith("sk-easel-")
    assert len(secret) > 40
    assert info.hint.endswith(secret[-4:])
    assert secret not in info.hint
    found, required = store.find(secret)
    assert found is not None
    assert found.id == info.id
    assert found.models == ("gpt-image-1",)
    assert required
    assert store.find("sk-easel-wrong")[0] is None

    rotated, new_secret = store.rotate(info.id)
    assert rotated.id == info.id
    assert new_secret != secret
    assert store.find(secret)[0] is None
    assert store.find(new_secret)[0] is not None

    revoked = store.revoke(info.id)
    assert revoked.revoked_at is not None
    found, required = store.find(new_secret)
    assert found is not None
    assert not found.active
    assert required  # revoking the last key does not reopen the server
    assert [k.id for k in store.list()] == [info.id]
    assert store.list(include_revoked=False) == []

    # Nothing in any table holds a secret in plain text.
    with db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            dump = repr(connection.execute(select(table)).all())
            assert secret not in dump
            assert new_secret not in dump
            assert secret[9:] not in dump


def test_admin_keys_do_not_turn_image_auth_on(db: Database) -> None:
    store = KeyStore(db)
    assert not store.any_keys()
    store.create(KeySpec(name="ops", admin=True))
    assert not store.any_keys()
    store.create(KeySpec(name="app"))
    assert store.any_keys()


def test_fifty_racing_charges_never_overshoot_the_budget(db: Database) -> None:
    ledger = Ledger(db)
    key, secret = KeyStore(db).create(KeySpec(budget_images=37, budget_period="day"))
    budget = Budget.of(key)
    live = digest(secret).hex()  # each charge confirms the key too, as the gate's do
    start = threading.Barrier(50)

    def charge(i: int) -> bool:
        start.wait()
        try:
            ledger.charge(entry(n=1 + i % 2, key=key.id, request=f"r{i}"), budget, live)
            return True
        except InsufficientQuotaError:
            return False

    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(charge, range(50)))
    charged = sum(1 + i % 2 for i, ok in enumerate(results) if ok)
    images, _ = ledger.spent(key.id, period_of("day", time.time()))
    assert images == charged
    assert 36 <= charged <= 37  # filled to the limit (a 2-image request may not fit the last slot)
    with db.session() as session:
        rows = session.scalars(select(UsageRecord)).all()
    assert len(rows) == sum(results)
    assert all(r.status == 0 for r in rows)


@pytest.mark.parametrize("records", [True, False], ids=["records", "no-records"])
@pytest.mark.parametrize("budgeted", [True, False], ids=["budget", "no-budget"])
def test_a_charge_confirms_its_key_is_live(db: Database, records: bool, budgeted: bool) -> None:
    store, ledger = KeyStore(db), Ledger(db, records=records)
    key, secret = store.create(KeySpec(budget_images=10 if budgeted else None, budget_period="total"))
    budget = Budget.of(key)

    def rows() -> int:
        with db.session() as session:
            return len(session.scalars(select(UsageRecord)).all())

    first = ledger.charge(entry(n=2, key=key.id), budget, digest(secret).hex())
    assert (first.record_id is not None) == records
    _, new_secret = store.rotate(key.id)
    with pytest.raises(StaleKeyError):  # the old secret, remembered by some process
        ledger.charge(entry(n=2, key=key.id), budget, digest(secret).hex())
    ledger.charge(entry(n=2, key=key.id), budget, digest(new_secret).hex())
    store.revoke(key.id)
    with pytest.raises(StaleKeyError):
        ledger.charge(entry(n=2, key=key.id), budget, digest(new_secret).hex())
    # The refused charges took nothing and wrote nothing.
    assert ledger.spent(key.id, "total") == ((4, 2 * 2 * 256 * 256) if budgeted else (0, 0))
    assert rows() == (2 if records else 0)


def test_on_postgresql_a_charge_and_a_settle_are_one_statement_each(postgres: Postgres) -> None:
    db = Database(postgres.database())
    db.upgrade()
    store, ledger = KeyStore(db), Ledger(db)
    key, secret = store.create(KeySpec(budget_images=10, budget_period="total"))
    live, budget = digest(secret).hex(), Budget.of(key)
    ledger.charge(entry(key=key.id), budget, live)  # the first charge opens the budget's row
    sent: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(Engine, "before_cursor_execute", count)
    try:
        charge = ledger.charge(entry(key=key.id), budget, live)
        assert len(sent) == 1
        ledger.settle(charge, 200, 5, 1)
        assert len(sent) == 2
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    assert ledger.spent(key.id, "total")[0] == 2
    db.close()


def test_live_keys_are_remembered_and_forgotten_on_revocation(db: Database) -> None:
    store, elsewhere = KeyStore(db), KeyStore(db)  # two processes' stores on one database
    key, secret = store.create(KeySpec(name="app"))
    probe = digest(secret).hex()
    assert store.cached(probe) is None
    found, _ = store.lookup(probe)
    assert store.cached(probe) == found
    elsewhere.revoke(key.id)
    assert store.cached(probe) == found  # the gate's confirmation is what catches this one
    store.forget(probe)
    assert store.cached(probe) is None
    assert store.lookup(probe)[0] is not None
    assert store.cached(probe) is None  # revoked keys are not remembered
    other, other_secret = store.create(KeySpec(name="other"))
    store.lookup(digest(other_secret).hex())
    store.revoke(other.id)  # revoked here: forgotten here at once
    assert store.cached(digest(other_secret).hex()) is None


def test_values_longer_than_their_columns_are_cut_to_fit(db: Database) -> None:
    # PostgreSQL refuses an over-long varchar: one such row must not fail a batch of closings.
    ledger = Ledger(db)
    long = Entry(**{**entry().__dict__, "project": "p" * 300, "org": "o" * 300})
    ledger.settle(ledger.charge(long, None), 200, 5, 1)
    ledger.record(long, 429)
    with db.session() as session:
        rows = session.scalars(select(UsageRecord)).all()
    assert [(len(r.project or ""), len(r.org or "")) for r in rows] == [(200, 200), (200, 200)]


def test_budget_refusal_names_the_budget_and_settle_refunds_undelivered(db: Database) -> None:
    ledger = Ledger(db)
    key, _ = KeyStore(db).create(KeySpec(budget_images=4, budget_megapixels=0.2))
    budget = Budget.of(key)
    charge = ledger.charge(entry(n=3, key=key.id), budget)
    with pytest.raises(InsufficientQuotaError) as refused:
        ledger.charge(entry(n=2, key=key.id), budget)
    error = refused.value
    assert error.status == 429
    assert error.code == "insufficient_quota"
    assert error.type == "insufficient_quota"
    assert "3 of 4 images" in error.message
    assert error.headers["x-should-retry"] == "false"
    ledger.settle(charge, 500, 12, images=1)  # two images were never delivered: refunded
    images, pixels = ledger.spent(key.id, charge.period or "")
    assert (images, pixels) == (1, 256 * 256)
    with db.session() as session:
        row = session.get(UsageRecord, charge.record_id)
        assert row is not None
        assert (row.status, row.images, row.latency_ms) == (500, 1, 12)


def test_images_usage_buckets_and_groups(db: Database) -> None:
    ledger = Ledger(db)
    for i, (model, n, status) in enumerate([("a", 2, 200), ("a", 1, 200), ("b", 4, 200), ("b", 1, 429)]):
        if status == 200:
            ledger.settle(ledger.charge(entry(n=n, model=model, key="k1", request=str(i)), None), 200, 5, n)
        else:
            ledger.record(entry(n=n, model=model, key="k2"), status)
    with db.session() as session:  # move the first row a day back
        session.execute(
            text("UPDATE usage_records SET created_at = created_at - 86400 WHERE request_id = '0'")
        )
    day = int(time.time()) // 86400 * 86400
    page = images_usage(db, day - 86400, day + 86400, "1d", ["model"])
    assert page["object"] == "page"
    assert [b["start_time"] for b in page["data"]] == [day - 86400, day]
    yesterday, today = page["data"]
    assert [(r["model"], r["images"], r["num_model_requests"]) for r in yesterday["results"]] == [("a", 2, 1)]
    got = sorted(
        (r["model"], r["images"], r["num_model_requests"], r["refused_requests"]) for r in today["results"]
    )
    assert got == [("a", 1, 1, 0), ("b", 4, 1, 1)]
    assert today["results"][0]["object"] == "organization.usage.images.result"
    by_source = images_usage(db, day, day + 86400, "1d", ["source", "api_key_id"])
    assert {(r["source"], r["api_key_id"]) for r in by_source["data"][0]["results"]} == {
        ("image.generation", "k1"),
        ("image.generation", "k2"),
    }
    paged = images_usage(db, day - 86400, day + 86400, "1d", [], limit=1)
    assert paged["has_more"]
    assert paged["next_page"] == str(day)
