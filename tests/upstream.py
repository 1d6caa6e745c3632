"""A fault-injecting upstream images server for the gateway tests: real HTTP on a loopback port,
answering from a script (errors with retry headers, stalls, streams cut or held mid-way)."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import anyio.to_thread
import orjson
import uvicorn
from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.helpers import free_port

#: What every test waits for at most on an event the fake sets (a loaded machine is slow).
PATIENCE = 120.0
USAGE = {"input_tokens": 17, "output_tokens": 4160, "total_tokens": 4177,
         "input_tokens_details": {"text_tokens": 17, "image_tokens": 0}}  # fmt: skip


def png_b64(colour: tuple[int, int, int] = (200, 30, 30)) -> str:
    out = io.BytesIO()
    Image.new("RGB", (64, 64), colour).save(out, "PNG")
    return base64.b64encode(out.getvalue()).decode()


@dataclass
class Faults:
    """The script: one behaviour per call (then `ok`), and what the upstream saw."""

    script: list[Any] = field(default_factory=list)
    calls: list[dict[str, Any]] = field(default_factory=list)
    #: Set by a held stream once its first event is out, or by a stalled call once it stalls.
    holding: threading.Event = field(default_factory=threading.Event)
    #: Set by the test to let a held stream (or a stall) go on.
    release: threading.Event = field(default_factory=threading.Event)
    #: Set by a held stream as it sends its last event.
    sent_last: threading.Event = field(default_factory=threading.Event)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def reset(self, *script: Any) -> None:
        self.script, self.calls = list(script), []
        self.holding.clear()
        self.release.clear()
        self.sent_last.clear()

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        self.calls.append({"path": request.url.path, "headers": dict(request.headers), "body": body})
        step = self.script.pop(0) if self.script else "ok"
        if isinstance(step, tuple):  # (status, headers): an error envelope
            status, headers = step
            envelope = {"error": {"message": f"fault {status}", "type": "server_error", "param": None,
                                  "code": "fault"}}  # fmt: skip
            return Response(orjson.dumps(envelope), status, headers={"x-request-id": "req_fault", **headers},
                            media_type="application/json")  # fmt: skip
        if step == "stall":
            self.holding.set()
            await anyio.to_thread.run_sync(self.release.wait, PATIENCE)
        if isinstance(step, dict):  # a 200 body of the test's own
            return Response(orjson.dumps(step), media_type="application/json")
        if step in ("held_stream", "dropped_stream"):
            return StreamingResponse(self._stream(step), media_type="text/event-stream")
        answer = {"created": int(time.time()), "data": [{"b64_json": png_b64()}], "background": "opaque",
                  "output_format": "png", "quality": "low", "size": "1024x1024", "usage": USAGE}  # fmt: skip
        return Response(orjson.dumps(answer), headers={"x-request-id": "req_upstream_ok",
                        "x-ratelimit-remaining-requests": "41"}, media_type="application/json")  # fmt: skip

    async def _stream(self, step: str) -> AsyncIterator[bytes]:
        partial = {"type": "image_generation.partial_image", "b64_json": png_b64((0, 0, 200)),
                   "partial_image_index": 0, "created_at": 1, "background": "opaque", "output_format": "png",
                   "quality": "low", "size": "1024x1024"}  # fmt: skip
        yield b"event: image_generation.partial_image\ndata: " + orjson.dumps(partial) + b"\n\n"
        if step == "dropped_stream":
            await asyncio.sleep(0.05)
            raise RuntimeError("the fake upstream drops the connection mid-stream")
        self.holding.set()
        await anyio.to_thread.run_sync(self.release.wait, PATIENCE)
        done = {**partial, "type": "image_generation.completed", "usage": USAGE}
        del done["partial_image_index"]
        self.sent_last.set()
        yield b"event: image_generation.completed\ndata: " + orjson.dumps(done) + b"\n\n"


@contextmanager
def fault_upstream() -> Iterator[Faults]:
    """The fake, serving on a free loopback port in a thread until the block ends."""
    faults = Faults(port=free_port())
    app = Starlette(routes=[Route("/v1/images/{op}", faults.handle, methods=["POST"])])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=faults.port, log_level="critical"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + PATIENCE
    while not server.started:
        assert thread.is_alive(), "the fake upstream did not start"
        assert time.monotonic() < deadline, "the fake upstream did not start in time"
        time.sleep(0.01)
    try:
        yield faults
    finally:
        faults.release.set()
        server.should_exit = True
        thread.join(PATIENCE)
