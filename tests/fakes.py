"""Fake backends: one that records the jobs it gets (or fails on purpose), one that waits for a gate."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi.testclient import TestClient
from PIL import Image

from easel.backends import (
    EXTENSIONS,
    AsyncBackend,
    AsyncPreviewSink,
    Backend,
    Capabilities,
    Job,
    PreviewSink,
    Rendered,
    StopCheck,
)
from easel.settings import ModelSpec

#: How long a test waits for something that should happen at once before calling it stuck.
STUCK = 120


class RecordingBackend(Backend):
    """Records jobs; renders flat grey images (and one preview each when asked)."""

    def __init__(
        self, spec: object = None, *, fail_after_preview: bool = False, fail: BaseException | None = None
    ) -> None:
        self.jobs: list[Job] = []
        self.fail_after_preview = fail_after_preview
        self.fail = fail

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            operations=frozenset({"generations", "edits", "variations"}),
            transparent_background=False,
            extensions=frozenset(EXTENSIONS),
        )

    def run(
        self, job: Job, on_preview: PreviewSink | None = None, stop: StopCheck | None = None
    ) -> Iterator[Rendered]:
        self.jobs.append(job)
        if self.fail is not None:
            raise self.fail
        r = job.render
        for i in range(r.n):
            if on_preview is not None and r.previews:
                on_preview(i, 0, Image.new("RGB", (r.width, r.height), (10, 10, 10)))
                if self.fail_after_preview:
                    raise RuntimeError("the GPU caught fire")
            yield Rendered(image=Image.new("RGB", (r.width, r.height), (128, 128, 128)), seed=i)


class GatedBackend(AsyncBackend):
    """Renders flat images once its gate opens; meanwhile it only awaits."""

    def __init__(self, spec: ModelSpec, concurrency: int = 16) -> None:
        super().__init__(spec)
        self._concurrency = concurrency
        self.waiting = threading.Event()
        self.closed = False
        self.fail: Exception | None = None
        #: Raised once the first image's previews are out (a failure after a stream has started).
        self.fail_late: Exception | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._gate: asyncio.Event | None = None

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            operations=frozenset({"generations"}),
            transparent_background=False,
            extensions=frozenset({"seed"}),
        )

    @property
    def concurrency(self) -> int:
        return self._concurrency

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
            if self.fail_late is not None:
                raise self.fail_late
            yield Rendered(image=Image.new("RGB", (r.width, r.height), (shade, shade, shade)), seed=seed)


def while_gated(
    client: TestClient,
    backend: GatedBackend,
    body: dict[str, Any],
    meanwhile: Callable[[], None] = lambda: None,
    model: str = "upstream",
) -> Any:
    """POST `body` to the gated model; once it waits in the backend, run `meanwhile`, then open
    the gate (also when `meanwhile` failed, so nothing is left hanging) and return the answer."""
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(client.post, "/v1/images/generations", json={"model": model, **body})
        try:
            assert backend.waiting.wait(STUCK), "the request never reached the backend"
            meanwhile()
            assert not pending.done(), "it waited for the gate"
        finally:
            backend.open_gate()
        return pending.result(STUCK)
