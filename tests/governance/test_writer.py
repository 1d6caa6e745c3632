"""How requests ended is written in batches: at shutdown too, and again after a failed write."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.exc import OperationalError

from easel.app import create_app
from easel.governance.db import Database
from easel.governance.db.database import sqlite_url
from easel.governance.db.schema import UsageRecord
from easel.governance.ledger import Closing, Ledger, Refusal
from easel.settings import Settings

GENERATE = {"prompt": "a lighthouse at dusk", "size": "256x256"}


def usage_rows(settings: Settings) -> list[tuple[int, int]]:
    db = Database(sqlite_url(settings.data_dir))
    try:
        with db.session() as session:
            return [
                (r.status, r.images) for r in session.scalars(select(UsageRecord).order_by(UsageRecord.id))
            ]
    finally:
        db.close()


def test_the_last_requests_are_closed_at_shutdown(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, default_rpm=3)
    with TestClient(create_app(settings)) as http:
        for _ in range(4):
            http.post("/v1/images/generations", json={**GENERATE, "n": 2})
    # Three charged requests closed (each delivered both images), one refused by the limit.
    assert sorted(usage_rows(settings)) == [(200, 2), (200, 2), (200, 2), (429, 0)]


def test_a_failed_write_is_retried_by_the_next_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(data_dir=tmp_path, admin_keys=["sk-admin"])
    calls: list[int] = []
    write = Ledger.write

    def flaky(self: Ledger, closings: list[Closing], refusals: list[Refusal]) -> None:
        calls.append(len(closings) + len(refusals))
        if len(calls) == 1:
            raise OperationalError("UPDATE usage_records", {}, Exception("database is locked"))
        write(self, closings, refusals)

    monkeypatch.setattr(Ledger, "write", flaky)
    admin = {"authorization": "Bearer sk-admin"}
    start = int(time.time()) // 86400 * 86400
    with TestClient(create_app(settings)) as http, caplog.at_level(logging.ERROR):
        assert http.post("/v1/images/generations", json=GENERATE).status_code == 200

        def counted() -> int:
            page: dict[str, Any] = http.get(
                "/v1/organization/usage/images", params={"start_time": start}, headers=admin
            ).json()
            return sum(r["images"] for b in page["data"] for r in b["results"])

        deadline = time.monotonic() + 5
        while counted() == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert counted() == 1
    assert calls[:2] == [1, 1]  # the same closing, written on the second attempt
    assert "could not write 1 usage closings and refusals" in caplog.text
    assert usage_rows(settings) == [(200, 1)]
