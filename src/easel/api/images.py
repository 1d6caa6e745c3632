"""POST /v1/images/generations, /edits and /variations: parse, plan, run or stream, respond."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping
from typing import Any

import orjson
from fastapi import APIRouter, Depends, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from .. import errors
from ..profiles import Plan
from ..service import ServedModel, stream_error
from ..sources import collect
from . import body as bodies
from .deps import ServicesDep, base_url, owner, require_key

log = logging.getLogger("easel.images")
router = APIRouter(prefix="/v1/images", dependencies=[Depends(require_key)], tags=["images"])


@router.post("/generations", operation_id="createImage", summary="Create images from a prompt")
async def generations(request: Request, services: ServicesDep) -> Response:
    body = await bodies.parse(request, services.settings.max_body_bytes, allow_json=True, allow_form=False)
    _note_model(request, services, body.fields)
    model, plan = await services.service.plan("generations", body.fields, {}, from_form=False)
    return await _respond(request, services, model, plan)


@router.post("/edits", operation_id="createImageEdit", summary="Edit images with a prompt")
async def edits(request: Request, services: ServicesDep) -> Response:
    body = await bodies.parse(request, services.settings.max_body_bytes, allow_json=True, allow_form=True)
    _note_model(request, services, body.fields)
    files = body.files
    if not body.form:
        model = services.service.model_for(body.fields)
        if model.rules.profile != "gpt-image":
            raise errors.BadRequestError(
                "JSON edits support GPT image models only; send a multipart/form-data "
                f"request for '{model.id}'.",
                code="invalid_value",
                param="model",
            )
        model.rules.check_operation("edits")
        files = await collect(body.fields, services.remote)
    model, plan = await services.service.plan(
        "edits", body.fields, files, from_form=body.form, json=not body.form
    )
    return await _respond(request, services, model, plan)


@router.post("/variations", operation_id="createImageVariation", summary="Create variations of an image")
async def variations(request: Request, services: ServicesDep) -> Response:
    body = await bodies.parse(request, services.settings.max_body_bytes, allow_json=False, allow_form=True)
    _note_model(request, services, body.fields)
    model, plan = await services.service.plan("variations", body.fields, body.files, from_form=True)
    return await _respond(request, services, model, plan)


def _note_model(request: Request, services: ServicesDep, fields: Mapping[str, Any]) -> None:
    """Label the request's metrics with the served model it names (the default if none)."""
    name = fields.get("model", services.service.default_model)
    if isinstance(name, str) and name in services.service.models:
        request.state.model = name


async def _respond(request: Request, services: ServicesDep, model: ServedModel, plan: Plan) -> Response:
    if plan.delivery.stream:
        # Queued now, so a full queue is a 503 rather than an error event. sse-starlette
        # cancels the event generator when the client leaves: that abandons the ticket.
        events = services.service.stream(model, plan, owner(request))
        return EventSourceResponse(_events(request, events), sep="\n", ping=15)
    work = asyncio.ensure_future(
        services.service.run(model, plan, base_url(request, services), owner(request))
    )
    gone = asyncio.ensure_future(_disconnected(request))
    await asyncio.wait((work, gone), return_when=asyncio.FIRST_COMPLETED)
    gone.cancel()
    if not work.done():  # the client left: stop waiting, which frees its queue slot or render
        work.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await work
        return Response(status_code=499)
    return Response(orjson.dumps(work.result()), media_type="application/json")


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone (the body is already read, so nothing else arrives)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _events(
    request: Request, events: AsyncIterator[tuple[str, dict[str, Any]]]
) -> AsyncIterator[ServerSentEvent]:
    try:
        async for kind, data in events:
            yield _event(kind, data)
    except Exception as exc:
        request_id = request.scope.get("state", {}).get("request_id", "")
        log.exception("stream failed (request id %s)", request_id)
        message = (
            exc.message
            if isinstance(exc, errors.GenerationFailedError)
            else (
                f"The image could not be generated. (Please include the request ID {request_id} "
                "in your message.)"
            )
        )
        yield _event("error", stream_error(message))


def _event(kind: str, data: dict[str, Any]) -> ServerSentEvent:
    # Plain LF line ends, as OpenAI sends them; both SDKs accept either.
    return ServerSentEvent(event=kind, data=orjson.dumps(data).decode(), sep="\n")
