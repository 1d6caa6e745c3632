"""AsyncBackend: runs on the event loop and holds no CPU slot while it waits; streams, fails cleanly."""

from __future__ import annotations

import asyncio
import base64
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from easel.app import create_app
from easel.backends import (
    AsyncBackend,
    AsyncPreviewSink,
    Capabilities,
    GenerationFailedError,
    Job,
    Rendered,
    StopCheck,
)
from easel.settings import ModelSpec, Settings
from tests.helpers import decode

#: How long a test waits for something that should happen at once before calling it stuck.
STUCK = 120


class GatedBackend(AsyncBackend):
    """Renders flat images once its gate opens; meanwhile it only awaits."""

    def __init__(self, spec: ModelSpec) -> None:
        super().__init__(spec)
        self.waiting = threading.Event()
        self.closed = False
        self.fail: Exception | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gate: asyncio.Event | None = None

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            operations=frozenset({"generations"}),
            transparent_background=False,
            extensions=frozenset({"seed"}),
        )

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._gate = asyncio.Event()

    async def close(self) -> None:
        self.closed = True

    def open_gate(self) -> None:
        assert self._loop is not None
        assert self._gate is not None
        self._loop.call_soon_threadsafe(self._gate.set)

    async def render(
        self, job: Job, on_preview: AsyncPreviewSink | None = None, stop: StopCheck | None = None
    ) -> AsyncIterator[Rendered]:
        assert self._gate is not None
        self.waiting.set()
        await self._gate.wait()
        if self.fail is not None:
            raise self.fail
        r = job.render
        for i in range(r.n):
            seed = (r.seed or 0) + i
            shade = seed % 256
            for step in range(r.previews):
                if on_preview is not None:
                    await on_preview(i, step, Image.new("RGB", (r.width, r.height), (step, 0, 0)))
            yield Rendered(image=Image.new("RGB", (r.width, r.height), (shade, shade, shade)), seed=seed)


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


def while_gated(
    client: TestClient,
    backend: GatedBackend,
    body: dict[str, Any],
    meanwhile: Callable[[], None] = lambda: None,
) -> Any:
    """POST `body` to the gated model; once it waits in the backend, run `meanwhile`, then open
    the gate (also when `meanwhile` failed, so nothing is left hanging) and return the answer."""
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.post, "/v1/images/generations", json={"model": "upstream", **body})
        try:
            assert backend.waiting.wait(STUCK), "the request never reached the backend"
            meanwhile()
            assert not pending.done(), "it waited for the gate"
        finally:
            backend.open_gate()
        return pending.result(STUCK)


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
