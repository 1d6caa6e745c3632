"""An admission settles its request however the work ends: delivered, refused, cancelled or crashed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select

from easel import errors
from easel.contract.rules import ModelRules, Plan
from easel.governance.auth import Authenticator, Caller
from easel.governance.db import Database
from easel.governance.db.schema import UsageRecord
from easel.governance.gate import Gate
from easel.governance.keys import StaticKeys
from easel.governance.keystore import KeyStore
from easel.governance.ledger import Ledger
from easel.governance.moderation import Moderator
from easel.governance.policy import ModerationSettings
from easel.governance.ratelimit import RateLimiter
from easel.imaging import Limits
from easel.jobs import EXTENSIONS, Capabilities
from easel.metrics import Metrics
from easel.settings import ModelSpec


def plan(n: int) -> Plan:
    caps = Capabilities(frozenset({"generations"}), False, frozenset(EXTENSIONS))
    rules = ModelRules(ModelSpec(id="gpt-image-1"), caps)
    limits = Limits(max_bytes=1024, max_pixels=1024)
    return rules.plan("generations", {"prompt": "x", "n": n}, {}, from_form=False, json=False, limits=limits)


def test_every_way_out_settles_once_with_its_status(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'easel.db'}")
    gate = Gate(
        Authenticator(StaticKeys([]), StaticKeys([]), KeyStore(db)),
        RateLimiter(),
        Ledger(db),
        Moderator(ModerationSettings()),
        Metrics(),
    )
    caller = Caller(owner="tests")

    async def scenario() -> None:
        delivered = await gate.admit(caller, plan(2), "req_1-delivered")
        with delivered:
            delivered.images = 2
        refused = await gate.admit(caller, plan(2), "req_2-refused")
        with pytest.raises(errors.ServiceUnavailableError), refused:
            raise errors.overloaded("full", 1.0)
        left = await gate.admit(caller, plan(2), "req_3-left")
        left.images = 1
        with pytest.raises(asyncio.CancelledError), left:
            raise asyncio.CancelledError
        crashed = await gate.admit(caller, plan(2), "req_4-crashed")
        with pytest.raises(RuntimeError), crashed:
            raise RuntimeError("a bug")
        handed_on = await gate.admit(caller, plan(1), "req_5-handed-on")
        with handed_on.if_refused():
            pass  # not settled here: whatever it was handed to settles it
        with handed_on:
            handed_on.images = 1
        failed_hand_over = await gate.admit(caller, plan(1), "req_6-not-handed-on")
        with pytest.raises(errors.ServiceUnavailableError), failed_hand_over.if_refused():
            raise errors.overloaded("full", 1.0)
        await gate.flush()

    asyncio.run(scenario())
    with db.session() as session:
        rows = session.scalars(select(UsageRecord).order_by(UsageRecord.request_id))
        ended = [(r.request_id.split("-", 1)[1], r.status, r.images) for r in rows]
    db.close()
    assert ended == [
        ("delivered", 200, 2),
        ("refused", 503, 0),
        ("left", 499, 1),
        ("crashed", 500, 0),
        ("handed-on", 200, 1),
        ("not-handed-on", 503, 0),
    ]
