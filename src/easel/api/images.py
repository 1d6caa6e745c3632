"""POST /v1/images/generations, /edits and /variations: parse the body, serve it, respond."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import orjson
from fastapi import APIRouter, Depends, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from ..jobs import Operation
from ..memory import Hold
from ..service import Streamed
from . import body as bodies
from .deps import ServicesDep, new_call, require_image_key

router = APIRouter(prefix="/v1/images", dependencies=[Depends(require_image_key)], tags=["images"])


@router.post("/generations", operation_id="createImage", summary="Create images from a prompt")
async def generations(request: Request, services: ServicesDep) -> Response:
    return await _serve(request, services, "generations", json=True, form=False)


@router.post("/edits", operation_id="createImageEdit", summary="Edit images with a prompt")
async def edits(request: Request, services: ServicesDep) -> Response:
    return await _serve(request, services, "edits", json=True, form=True)


@router.post("/variations", operation_id="createImageVariation", summary="Create variations of an image")
async def variations(request: Request, services: ServicesDep) -> Response:
    return await _serve(request, services, "variations", json=False, form=True)


async def _serve(
    request: Request, services: ServicesDep, op: Operation, *, json: bool, form: bool
) -> Response:
    # The body's bytes and its images' pixels count against `max_buffered_bytes` until the
    # answer is ready, or until a stream ends.
    hold: Hold | None = services.memory.hold()
    try:
        body = await bodies.parse(
            request, services.settings.max_body_bytes, allow_json=json, allow_form=form, hold=hold
        )
        call = new_call(request, services, hold)
        answer = await services.service.serve(op, body.fields, body.files, call, form=body.form)
        if answer is None:  # the client left before its images were ready
            return Response(status_code=499)
        if isinstance(answer, Streamed):
            # sse-starlette cancels the events when the client leaves, which abandons the work.
            stream, hold = _sse(answer, call.hold), None
            return EventSourceResponse(stream, sep="\n", ping=15, headers=call.headers)
        return Response(answer, media_type="application/json", headers=call.headers)
    finally:
        if hold is not None:
            hold.release()


async def _sse(stream: Streamed, hold: Hold | None) -> AsyncIterator[ServerSentEvent]:
    try:
        async with contextlib.aclosing(stream.events) as events:
            async for kind, data in events:
                # Plain LF line ends, as OpenAI sends them; both SDKs accept either.
                yield ServerSentEvent(event=kind, data=orjson.dumps(data).decode(), sep="\n")
    finally:
        if hold is not None:
            hold.release()
