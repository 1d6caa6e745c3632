"""Overflow and fallback between served models: a local model (gated, so its queue fills on cue)
in front of a real strict `easel serve` upstream, reached through the `openai` backend."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from easel import errors
from easel.app import create_app
from easel.settings import ModelSpec, Settings
from tests.fakes import STUCK, GatedBackend
from tests.helpers import Server, start_server

UPSTREAM_KEY = "sk-routing-upstream-key"


@pytest.fixture(scope="module")
def upstream(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    config = f'api_keys = ["{UPSTREAM_KEY}"]\n[[models]]\nid = "gpt-image-2.6-sunburst"\nstrict = true\n'
    server = start_server(tmp_path_factory.mktemp("routing-upstream"), config)
    yield server
    server.stop()


@contextmanager
def serving(upstream: Server, tmp: Path, **local: Any) -> Iterator[tuple[TestClient, GatedBackend]]:
    """A gated local model (one run at a time) with `local`'s routing, and `cloud` on the upstream."""
    spec = ModelSpec(id="local", **local)
    cloud = ModelSpec(id="cloud", backend="openai", options={
        "base_url": f"{upstream.url}/v1", "api_key_env": "ROUTING_UPSTREAM_KEY",
        "model": "gpt-image-2.6-sunburst",
    })  # fmt: skip
    backend = GatedBackend(spec, concurrency=1)
    settings = Settings(data_dir=tmp / "data", models=[spec, cloud])
    with TestClient(create_app(settings, backends={"local": backend})) as client:
        yield client, backend
        backend.open_gate()


@pytest.fixture
def gateway(
    upstream: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[TestClient, GatedBackend]]:
    monkeypatch.setenv("ROUTING_UPSTREAM_KEY", UPSTREAM_KEY)
    with serving(upstream, tmp_path, max_queue=1, overflow="cloud", fallback="cloud") as served:
        yield served


def generate(client: TestClient, **body: Any) -> Any:
    return client.post("/v1/images/generations", json={"model": "local", "prompt": "a kite", **body})


def waiting(client: TestClient) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "easel_queue_depth" and sample.labels.get("model") == "local":
                return float(sample.value)
    return 0.0


def rerouted(client: TestClient, reason: str) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        for sample in family.samples:
            if sample.name == "easel_rerouted_total" and sample.labels == {
                "model": "local", "target": "cloud", "reason": reason,
            }:  # fmt: skip
                return float(sample.value)
    return 0.0


def test_a_full_queue_overflows_to_the_upstream_and_the_rest_wait(
    gateway: tuple[TestClient, GatedBackend],
) -> None:
    client, backend = gateway
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(generate, client)
        try:
            assert backend.waiting.wait(STUCK), "the first request reached the model"
            second = pool.submit(generate, client)
            deadline = time.monotonic() + STUCK
            while waiting(client) < 1:
                assert time.monotonic() < deadline, "the second request never queued"
                time.sleep(0.01)
            overflowed = generate(client, size="1536x864")
            assert overflowed.status_code == 200, overflowed.text
            assert overflowed.headers["x-easel-served-by"] == "cloud"
            assert overflowed.json()["size"] == "1536x864", "the upstream's own answer"
            # The local model's own extension: the upstream cannot serve it, so no overflow.
            refused = generate(client, seed=7)
            assert refused.status_code == 503
            assert refused.json()["error"]["code"] == "server_overloaded"
        finally:
            backend.open_gate()
        answers = [first.result(STUCK), second.result(STUCK)]
    assert [a.status_code for a in answers] == [200, 200]
    assert {a.headers["x-easel-served-by"] for a in answers} == {"local"}
    assert rerouted(client, "overflow") == 1


def test_a_skipped_upstream_takes_no_overflow(gateway: tuple[TestClient, GatedBackend]) -> None:
    client, backend = gateway
    cloud = client.app.state.services.service.models["cloud"].backend  # type: ignore[attr-defined]
    cloud.upstream.circuit.open_until = time.monotonic() + 600
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(generate, client)
        try:
            assert backend.waiting.wait(STUCK)
            second = pool.submit(generate, client)
            deadline = time.monotonic() + STUCK
            while waiting(client) < 1:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            assert generate(client).status_code == 503
        finally:
            backend.open_gate()
        assert first.result(STUCK).status_code == second.result(STUCK).status_code == 200
    assert client.get("/v1/models/cloud").json()["upstream"]["available"] is False


def test_a_local_failure_falls_back_and_a_refusal_does_not(gateway: tuple[TestClient, GatedBackend]) -> None:
    client, backend = gateway
    backend.open_gate()
    backend.fail = errors.GenerationFailedError("CUDA out of memory.")
    answer = generate(client)
    assert answer.status_code == 200, answer.text
    assert answer.headers["x-easel-served-by"] == "cloud"
    assert answer.json()["usage"]["output_tokens"] > 0

    body = {"model": "local", "prompt": "a kite", "stream": True, "partial_images": 1}
    with client.stream("POST", "/v1/images/generations", json=body) as stream:
        assert stream.headers["x-easel-served-by"] == "cloud", "a stream falls back before its first event"
        text = stream.read().decode()
    assert "event: image_generation.partial_image" in text
    assert "event: image_generation.completed" in text

    backend.fail = errors.ModerationBlockedError(["violence"], "output")
    refused = generate(client)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "moderation_blocked"
    assert refused.headers["x-easel-served-by"] == "local", "a refusal is never routed around"
    assert rerouted(client, "fallback") == 2

    # A failure after the stream's first event stays in the stream: nothing is sent twice.
    backend.fail, backend.fail_late = None, errors.GenerationFailedError("CUDA out of memory.")
    with client.stream("POST", "/v1/images/generations", json=body) as stream:
        assert stream.headers["x-easel-served-by"] == "local"
        text = stream.read().decode()
    assert text.index("event: image_generation.partial_image") < text.index("event: error")
    assert "CUDA out of memory." in text
    assert rerouted(client, "fallback") == 2

    # The usage rows say who answered.
    database = client.app.state.services.settings.data_dir / "easel.db"  # type: ignore[attr-defined]
    deadline = time.monotonic() + STUCK
    while True:
        with sqlite3.connect(database) as db:
            rows = db.execute("SELECT status, served_by FROM usage_records ORDER BY id").fetchall()
        if (len(rows) >= 4 and all(status for status, _ in rows)) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert rows == [(200, "cloud"), (200, "cloud"), (400, "local"), (500, "local")]


def test_a_long_wait_overflows_before_the_queue_is_full(
    upstream: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ROUTING_UPSTREAM_KEY", UPSTREAM_KEY)
    with (
        serving(upstream, tmp_path, overflow="cloud", overflow_after_seconds=0.5) as (client, backend),
        ThreadPoolExecutor(1) as pool,
    ):
        first = pool.submit(generate, client)
        try:
            assert backend.waiting.wait(STUCK)
            # One run ahead at the scheduler's first guess of 1 s a run: past the 0.5 s allowed.
            second = generate(client)
            assert second.status_code == 200, second.text
            assert second.headers["x-easel-served-by"] == "cloud"
        finally:
            backend.open_gate()
        assert first.result(STUCK).headers["x-easel-served-by"] == "local"


def test_a_draining_server_sends_nothing_more_upstream(gateway: tuple[TestClient, GatedBackend]) -> None:
    client, _ = gateway
    client.app.state.services.service.drain()  # type: ignore[attr-defined]
    answer = client.post("/v1/images/generations", json={"model": "cloud", "prompt": "a kite"})
    assert answer.status_code == 503
    assert answer.json()["error"]["message"] == "The server is shutting down."
