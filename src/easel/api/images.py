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
from ..gate import Admission
from ..profiles import Plan
from ..service import ServedModel, stream_error
from ..sources import collect
from . import body as bodies
from .deps import ServicesDep, base_url, caller, owner, require_image_key

log = logging.getLogger("easel.images")
router = APIRouter(prefix="/v1/images", dependencies=[Depends(require_image_key)], tags=["images"])


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
    """Label the request's metrics with the served model it names (the default if none), and
    refuse it (403) when the caller's key may not use that model."""
    name = fields.get("model", services.service.default_model)
    if isinstance(name, str) and name in services.service.models:
        request.state.model = name
        caller(request).check_model(name)


async def _respond(request: Request, services: ServicesDep, model: ServedModel, plan: Plan) -> Response:
    request_id = request.scope.get("state", {}).get("request_id", "")
    if services.settings.log_prompts:
        request.state.prompt = getattr(plan.job, "prompt", None)
    admission = await services.gate.admit(caller(request), plan, request_id)
    if plan.delivery.stream:
        # Queued now, so a full queue is a 503 rather than an error event. sse-starlette
        # cancels the event generator when the client leaves: that abandons the ticket.
        try:
            events = services.service.stream(model, plan, owner(request))
        except errors.APIError as exc:
            services.gate.settle(admission, exc.status, 0)
            raise
        return EventSourceResponse(
            _events(request, services, admission, events), sep="\n", ping=15, headers=admission.headers
        )
    status, images = 500, 0
    try:
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
            status = 499
            return Response(status_code=499)
        try:
            body = work.result()
        except errors.APIError as exc:
            status = exc.status
            exc.headers = {**admission.headers, **exc.headers}
            raise
        status, images = 200, len(body["data"])
        return Response(orjson.dumps(body), media_type="application/json", headers=admission.headers)
    finally:
        services.gate.settle(admission, status, images)


async def _disconnected(request: Request) -> None:
    """Returns once the client has gone (the body is already read, so nothing else arrives)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _events(
    request: Request,
    services: ServicesDep,
    admission: Admission,
    events: AsyncIterator[tuple[str, dict[str, Any]]],
) -> AsyncIterator[ServerSentEvent]:
    status, images = 499, 0  # what is recorded if the client leaves first
    try:
        async for kind, data in events:
            yield _event(kind, data)
            images += kind.endswith(".completed")
        status = 200
    except Exception as exc:
        request_id = request.scope.get("state", {}).get("request_id", "")
        if isinstance(exc, errors.APIError) and exc.status < 500:
            status = exc.status
            yield _event("error", stream_error(exc.message, exc.type, exc.code, exc.extra))
        else:
            status = 500
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
    finally:
        services.gate.settle(admission, status, images)


def _event(kind: str, data: dict[str, Any]) -> ServerSentEvent:
    # Plain LF line ends, as OpenAI sends them; both SDKs accept either.
    return ServerSentEvent(event=kind, data=orjson.dumps(data).decode(), sep="\n")
