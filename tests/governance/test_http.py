"""Managed keys, scopes, bindings, limits, budgets, moderation and usage over HTTP (in process)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select

from easel.app import create_app
from easel.backends.placeholder import PlaceholderBackend
from easel.governance.db import Database
from easel.governance.db.database import sqlite_url
from easel.governance.db.schema import UsageRecord
from easel.governance.keystore import KeyStore
from easel.jobs import Job
from easel.settings import ModelSpec, Settings
from tests.helpers import CLASSIC_MODELS

ADMIN = {"authorization": "Bearer sk-admin-one"}
GENERATE = {"prompt": "a lighthouse at dusk", "size": "256x256"}
TODAY = int(time.time()) // 86400 * 86400


def bearer(secret: str) -> dict[str, str]:
    return {"authorization": f"Bearer {secret}"}


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        admin_keys=["sk-admin-one"],
        log_prompts=False,
        models=CLASSIC_MODELS,
    )


@pytest.fixture
def http(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        yield client


def new_key(http: TestClient, **spec: Any) -> dict[str, Any]:
    response = http.post("/admin/keys", json=spec, headers=ADMIN)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def counter(http: TestClient, name: str, **labels: str) -> float:
    for family in text_string_to_metric_families(http.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return float(sample.value)
    return 0.0


def test_admin_key_lifecycle_over_http(http: TestClient) -> None:
    assert http.post("/v1/images/generations", json=GENERATE).status_code == 200  # open: no keys yet
    created = new_key(http, name="ci", models=["gpt-image-1"], rpm=10)
    secret = created.pop("secret")
    assert created["object"] == "api_key"
    assert created["hint"].endswith(secret[-4:])
    listed = http.get("/admin/keys", headers=ADMIN).json()["data"]
    assert [k["id"] for k in listed] == [created["id"]]
    assert secret not in orjson.dumps(listed).decode()

    # A managed key now exists: image requests need one.
    missing = http.post("/v1/images/generations", json=GENERATE)
    assert missing.status_code == 401
    assert missing.json()["error"]["message"].startswith("You didn't provide an API key.")
    assert http.post("/v1/images/generations", json=GENERATE, headers=bearer(secret)).status_code == 200

    rotated = http.post(f"/admin/keys/{created['id']}/rotate", headers=ADMIN).json()
    assert http.post("/v1/images/generations", json=GENERATE, headers=bearer(secret)).status_code == 401
    assert (
        http.post("/v1/images/generations", json=GENERATE, headers=bearer(rotated["secret"])).status_code
        == 200
    )

    revoked = http.post(f"/admin/keys/{created['id']}/revoke", headers=ADMIN).json()
    assert revoked["revoked_at"] is not None
    wrong = http.post("/v1/images/generations", json=GENERATE, headers=bearer(rotated["secret"]))
    assert wrong.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert rotated["secret"] not in wrong.text  # masked
    assert http.get("/admin/keys/key_nope", headers=ADMIN).status_code == 404


def test_a_key_revoked_by_another_process_is_refused_by_the_charge(
    http: TestClient, settings: Settings
) -> None:
    created = new_key(http, name="app")
    secret, hint = created["secret"], created["hint"]
    assert http.post("/v1/images/generations", json=GENERATE, headers=bearer(secret)).status_code == 200
    # Another process revokes it: this one still remembers the key, so the gate's charge must
    # catch it. Nothing is rendered, charged or recorded for it.
    elsewhere = Database(sqlite_url(settings.data_dir))
    KeyStore(elsewhere).revoke(created["id"])
    elsewhere.close()
    refused = http.post("/v1/images/generations", json=GENERATE, headers=bearer(secret))
    assert refused.status_code == 401
    assert refused.json()["error"] == {
        "message": f"Incorrect API key provided: {hint}.", "type": "invalid_request_error",
        "param": None, "code": "invalid_api_key",
    }  # fmt: skip
    # Forgotten: the next request is refused before its body is even read.
    assert http.post("/v1/images/generations", json={}, headers=bearer(secret)).status_code == 401
    assert http.get("/v1/models", headers=bearer(secret)).status_code == 401  # always looked up
    usage = http.get("/v1/organization/usage/images", params={"start_time": TODAY}, headers=ADMIN).json()
    assert sum(r["num_model_requests"] for b in usage["data"] for r in b["results"]) == 1


def test_scopes_are_separate(http: TestClient) -> None:
    app_key = new_key(http, name="app")["secret"]
    admin_key = new_key(http, name="ops", admin=True)["secret"]
    assert http.get("/admin/keys").status_code == 401
    refused = http.get("/admin/keys", headers=bearer(app_key))
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "admin_key_required"
    assert http.get("/admin/keys", headers=bearer(admin_key)).status_code == 200
    for key in (admin_key, "sk-admin-one"):
        images = http.post("/v1/images/generations", json=GENERATE, headers=bearer(key))
        assert images.status_code == 403
        assert images.json()["error"]["code"] == "admin_key_not_allowed"
    bad = http.post("/admin/keys", json={"name": "x", "rpm": 0, "surprise": 1}, headers=ADMIN)
    assert bad.status_code == 400
    assert bad.json()["error"]["type"] == "invalid_request_error"
    unknown_model = http.post("/admin/keys", json={"models": ["dall-e-9"]}, headers=ADMIN)
    assert unknown_model.status_code == 400
    assert unknown_model.json()["error"]["param"] == "models"


def test_model_and_project_bindings(http: TestClient) -> None:
    secret = new_key(http, models=["dall-e-2"], org="org-a", project="proj-a")["secret"]
    wrong_model = http.post("/v1/images/generations", json=GENERATE, headers=bearer(secret))
    assert wrong_model.status_code == 403
    error = wrong_model.json()["error"]
    assert error["param"] == "model"
    assert "gpt-image-1" in error["message"]
    ok = {"model": "dall-e-2", "prompt": "a fox", "size": "256x256"}
    assert http.post("/v1/images/generations", json=ok, headers=bearer(secret)).status_code == 200
    for header, value, code in (
        ("openai-organization", "org-b", "mismatched_organization"),
        ("openai-project", "proj-b", "mismatched_project"),
    ):
        refused = http.post("/v1/images/generations", json=ok, headers={**bearer(secret), header: value})
        assert refused.status_code == 403
        assert refused.json()["error"]["code"] == code
    matching = {**bearer(secret), "openai-organization": "org-a", "openai-project": "proj-a"}
    assert http.post("/v1/images/generations", json=ok, headers=matching).status_code == 200
    for header in ("OpenAI-Organization", "OpenAI-Project"):  # longer than a usage row holds
        long = http.post("/v1/images/generations", json=ok, headers={**bearer(secret), header: "p" * 201})
        assert long.status_code == 400
        assert (
            long.json()["error"]["message"]
            == f"The {header} header is too long: 201 characters, at most 200."
        )


def test_rate_limit_headers_and_refusal(http: TestClient) -> None:
    secret = new_key(http, rpm=2, ipm=3)["secret"]
    first = http.post("/v1/images/generations", json=GENERATE, headers=bearer(secret))
    assert first.status_code == 200
    h = first.headers
    assert (h["x-ratelimit-limit-requests"], h["x-ratelimit-remaining-requests"]) == ("2", "1")
    assert (h["x-ratelimit-limit-images"], h["x-ratelimit-remaining-images"]) == ("3", "2")
    assert h["x-ratelimit-reset-requests"].endswith("s")
    too_many = http.post("/v1/images/generations", json={**GENERATE, "n": 3}, headers=bearer(secret))
    assert too_many.status_code == 429
    error = too_many.json()["error"]
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded")
    assert error["message"].startswith(
        "Rate limit reached for gpt-image-1 on images per min (IPM): Limit 3, Used 1, Requested 3."
    )
    assert 0 < int(too_many.headers["retry-after-ms"]) <= 60_005
    assert int(too_many.headers["retry-after"]) >= 1
    # Limits are per model: dall-e-2 has its own window.
    other = http.post(
        "/v1/images/generations", json={**GENERATE, "model": "dall-e-2"}, headers=bearer(secret)
    )
    assert other.headers["x-ratelimit-remaining-requests"] == "1"
    assert counter(http, "easel_refusals_total", model="gpt-image-1", reason="rate_limited") == 1


def test_budget_refusal_and_usage_endpoint(http: TestClient) -> None:
    created = new_key(http, budget_images=3, budget_period="day")
    secret = created["secret"]
    assert (
        http.post("/v1/images/generations", json={**GENERATE, "n": 2}, headers=bearer(secret)).status_code
        == 200
    )
    over = http.post("/v1/images/generations", json={**GENERATE, "n": 2}, headers=bearer(secret))
    assert over.status_code == 429
    assert over.headers["x-should-retry"] == "false"
    error = over.json()["error"]
    assert (error["type"], error["code"]) == ("insufficient_quota", "insufficient_quota")
    assert "2 of 3 images today" in error["message"]
    assert http.post("/v1/images/generations", json=GENERATE, headers=bearer(secret)).status_code == 200

    page = http.get(
        "/v1/organization/usage/images",
        params={"start_time": TODAY, "bucket_width": "1d", "group_by": "api_key_id,source"},
        headers=ADMIN,
    ).json()
    results = [r for bucket in page["data"] for r in bucket["results"]]
    mine = [r for r in results if r["api_key_id"] == created["id"]]
    assert len(mine) == 1
    assert (mine[0]["images"], mine[0]["num_model_requests"], mine[0]["refused_requests"]) == (3, 2, 1)
    assert mine[0]["source"] == "image.generation"
    cases: list[tuple[dict[str, str | int], str]] = [
        ({}, "start_time"),
        ({"start_time": 0, "bucket_width": "2d"}, "bucket_width"),
        ({"start_time": 0, "group_by": "colour"}, "group_by"),
    ]
    for params, param in cases:
        bad = http.get("/v1/organization/usage/images", params=params, headers=ADMIN)
        assert bad.status_code == 400
        assert bad.json()["error"]["param"] == param


class FlagsRed(PlaceholderBackend):
    """A backend whose output check flags any image whose top-left pixel is mostly red."""

    def moderate_output(self, job: Job, image: Image.Image) -> Sequence[str]:
        r, g, b = image.convert("RGB").getpixel((0, 0))  # type: ignore[misc]
        return ["violence"] if job.render.moderation == "auto" and r > g + b else []


def test_moderation_refusals_carry_the_envelope_and_are_counted(http: TestClient) -> None:
    refused = http.post("/v1/images/generations", json={**GENERATE, "prompt": "a gory battlefield"})
    assert refused.status_code == 400
    assert refused.json()["error"] == {
        "message": refused.json()["error"]["message"],
        "type": "image_generation_user_error",
        "param": None,
        "code": "moderation_blocked",
        "moderation_details": {"moderation_stage": "input", "categories": ["violence/graphic"]},
    }
    assert refused.json()["error"]["message"].startswith("Your request was rejected by the safety system.")
    # `low` lets the stricter terms through, but never the categories blocked at every level.
    assert http.post("/v1/images/generations", json={**GENERATE, "prompt": "a gory battlefield",
                                                     "moderation": "low"}).status_code == 200  # fmt: skip
    worst = {**GENERATE, "prompt": "naked children", "moderation": "low"}
    assert http.post("/v1/images/generations", json=worst).json()["error"]["moderation_details"][
        "categories"
    ] == ["sexual/minors"]
    assert counter(http, "easel_refusals_total", model="gpt-image-1", reason="moderation") == 2
    page = http.get("/v1/organization/usage/images", params={"start_time": TODAY}, headers=ADMIN).json()
    assert sum(r["refused_requests"] for b in page["data"] for r in b["results"]) == 2


def test_output_check_hook_refuses_after_rendering(tmp_path: Path) -> None:
    spec = ModelSpec(id="gpt-image-1")
    settings = Settings(data_dir=tmp_path / "data", models=[spec])
    backend = FlagsRed(spec)
    red = None
    with TestClient(create_app(settings, backends={"gpt-image-1": backend})) as http:
        for seed in range(40):  # find a prompt/seed the placeholder paints red in the corner
            body = {**GENERATE, "prompt": f"sunset {seed}", "seed": seed}
            response = http.post("/v1/images/generations", json=body)
            if response.status_code == 400:
                red = body
                break
            assert response.status_code == 200
        assert red is not None, "no red corner in 40 seeds"
        error = http.post("/v1/images/generations", json=red).json()["error"]
        assert error["code"] == "moderation_blocked"
        assert error["moderation_details"] == {"moderation_stage": "output", "categories": ["violence"]}
        assert http.post("/v1/images/generations", json={**red, "moderation": "low"}).status_code == 200
        events = http.post("/v1/images/generations", json={**red, "stream": True}).text
        assert "event: error" in events
        assert '"code":"moderation_blocked"' in events


def test_json_logs_carry_the_request_id_and_never_the_key(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from easel.logs import JsonFormatter

    settings = Settings(data_dir=tmp_path / "data", api_keys=["sk-static-secret-key"], log_prompts=True)
    with TestClient(create_app(settings)) as http, caplog.at_level(logging.INFO):
        response = http.post("/v1/images/generations", json=GENERATE, headers=bearer("sk-static-secret-key"))
        http.post("/v1/images/generations", json=GENERATE, headers=bearer("sk-wrong-secret-key"))
    lines = [orjson.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "easel.access"]
    assert lines[0]["request_id"] == response.headers["x-request-id"]
    assert lines[0]["status"] == 200
    assert lines[0]["prompt"] == GENERATE["prompt"]
    assert lines[0]["key_id"].startswith("static_")
    assert lines[1]["status"] == 401
    everything = caplog.text + "".join(JsonFormatter().format(r) for r in caplog.records)
    assert "sk-static-secret-key" not in everything
    assert "sk-wrong-secret-key" not in everything


def test_prompts_stay_out_of_logs_by_default(http: TestClient, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        http.post("/v1/images/generations", json=GENERATE)
    assert GENERATE["prompt"] not in caplog.text
    assert any(r.name == "easel.access" for r in caplog.records)


def test_usage_rows_record_the_safety_identifier(http: TestClient, settings: Settings) -> None:
    """The non-empty safety_identifier, else user, is kept with the request's usage row."""
    for extra in ({"safety_identifier": "hash-9", "user": "old"}, {"user": "old"}, {}):
        assert http.post("/v1/images/generations", json={**GENERATE, **extra}).status_code == 200
    http.get("/v1/organization/usage/images", params={"start_time": TODAY}, headers=ADMIN)  # flushes
    db = Database(sqlite_url(settings.data_dir))
    try:
        with db.session() as session:
            rows = session.scalars(select(UsageRecord.safety_identifier).order_by(UsageRecord.id)).all()
    finally:
        db.close()
    assert rows == ["hash-9", "old", None]


def test_a_total_budget_says_it_has_no_next_period(http: TestClient) -> None:
    created = new_key(http, budget_images=1, budget_period="total")
    headers = bearer(created["secret"])
    assert http.post("/v1/images/generations", json=GENERATE, headers=headers).status_code == 200
    over = http.post("/v1/images/generations", json=GENERATE, headers=headers)
    message = over.json()["error"]["message"]
    assert "it has used 1 of 1 images in total, and this request needs 1 image (" in message
    assert message.endswith("Ask the operator to raise the budget.")
    assert "next period" not in message


@pytest.mark.parametrize(
    ("limits", "sets"),
    [
        ({}, set()),
        ({"rpm": 1}, {"requests"}),
        ({"ipm": 1}, {"images"}),
        ({"rpm": 1, "ipm": 5}, {"requests", "images"}),
        ({"rpm": 5, "ipm": 1}, {"requests", "images"}),
    ],
    ids=["no-limits", "rpm", "ipm", "both-rpm-first", "both-ipm-first"],
)
def test_every_answer_reports_each_limit_that_applies(
    http: TestClient, limits: dict[str, int], sets: set[str]
) -> None:
    """Each limit a key has is reported on every answer, its 429 included (whichever limit
    refused it); a key without limits gets no x-ratelimit-* headers (there is nothing to report)."""
    headers = bearer(new_key(http, **limits)["secret"])

    def reported(response: Any) -> set[str]:
        kinds = {
            h.removeprefix("x-ratelimit-limit-")
            for h in response.headers
            if h.startswith("x-ratelimit-limit-")
        }
        for kind in kinds:
            assert {f"x-ratelimit-remaining-{kind}", f"x-ratelimit-reset-{kind}"} <= set(response.headers)
        return kinds

    first = http.post("/v1/images/generations", json=GENERATE, headers=headers)
    assert first.status_code == 200
    assert reported(first) == sets
    if not sets:
        return
    second = http.post("/v1/images/generations", json=GENERATE, headers=headers)
    assert second.status_code == 429
    assert reported(second) == sets, "the 429 reports every limit too"
    assert "retry-after-ms" in second.headers
