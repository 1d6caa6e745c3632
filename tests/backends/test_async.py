"""AsyncBackend: runs on the event loop and holds no CPU slot while it waits; streams, fails cleanly."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import orjson
import pytest
from fastapi.testclient import TestClient

from easel.app import create_app
from easel.backends import (
    GenerationFailedError,
)
from easel.settings import ModelSpec, Settings
from tests.fakes import STUCK, GatedBackend, while_gated
from tests.helpers import decode


@pytest.fixture
def gated(tmp_path: Path) -> Iterator[tuple[TestClient, GatedBackend]]:
    settings = Settings(
        data_dir=tmp_path / "data",
        cpu_workers=1,  # one slot: a run that held it while waiting would block everyone else
        models=[ModelSpec(id="gpt-image-1"), ModelSpec(id="upstream")],
    )
    backend = GatedBackend(settings.models[1])
    with TestClient(create_app(settings, backends={"upstream": backend})) as client:
        yield client, backend
    assert backend.closed, "close() ran at shutdown"


def test_a_waiting_async_run_holds_no_cpu_slot(gated: tuple[TestClient, GatedBackend]) -> None:
    client, backend = gated

    def local_request() -> None:
        pool = ThreadPoolExecutor(1)
        try:
            body = {"prompt": "x", "size": "256x256"}
            local = pool.submit(client.post, "/v1/images/generations", json=body)
            assert local.result(STUCK).status_code == 200, "the placeholder ran while the async run waited"
        finally:
            pool.shutdown(wait=False)  # if it is stuck behind the gate, opening the gate frees it

    answer = while_gated(client, backend, {"prompt": "x", "size": "256x256"}, local_request)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()["data"]) == 1


def test_async_streams_carry_each_images_previews(gated: tuple[TestClient, GatedBackend]) -> None:
    client, backend = gated
    body = {"prompt": "x", "size": "256x256", "n": 2, "stream": True, "partial_images": 2, "seed": 7}
    text = while_gated(client, backend, body).text
    kinds = [line.removeprefix("event: ") for line in text.splitlines() if line.startswith("event: ")]
    assert (
        kinds
        == [
            "image_generation.partial_image",
            "image_generation.partial_image",
            "image_generation.completed",
        ]
        * 2
    )
    events = [
        orjson.loads(line.removeprefix("data: ")) for line in text.splitlines() if line.startswith("data: ")
    ]
    assert [e["partial_image_index"] for e in events if "partial_image_index" in e] == [0, 1, 0, 1]
    shades = [decode(base64.b64decode(e["b64_json"])).getpixel((0, 0)) for e in events if "usage" in e]
    assert shades == [(7, 7, 7), (8, 8, 8)], "image i is drawn with seed + i"


def test_an_async_failure_is_an_envelope(gated: tuple[TestClient, GatedBackend]) -> None:
    client, backend = gated
    backend.fail = GenerationFailedError("The upstream refused the request.")
    response = while_gated(client, backend, {"prompt": "x"})
    assert response.status_code == 500
    assert response.json()["error"] == {
        "message": "The upstream refused the request.",
        "type": "image_generation_server_error",
        "param": None,
        "code": "image_generation_failed",
    }
