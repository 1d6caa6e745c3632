"""The local path: a plan queued on its model's scheduler, its images delivered as a body or events."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import replace

from .. import imaging
from ..contract.responses import CompletedEvent, ImageItem, ImagesResponse, PartialImageEvent, Resolved, Usage
from ..contract.rules import Plan
from ..contract.usage import svg_usage
from ..governance.gate import Admission
from ..metrics import Metrics
from ..scheduler import Finished, ModelQueue, Partial, Ticket
from ..storage import Storage
from .calls import Call, Event, ServedModel, until_gone

#: The stream's event type prefix per operation (CONTRACT §4).
EVENT_PREFIX = {"generations": "image_generation", "edits": "image_edit"}


class Local:
    """Runs plans on the schedulers of the models easel renders itself."""

    def __init__(
        self, schedulers: Mapping[str, ModelQueue], storage: Storage, metrics: Metrics, timeout: float
    ) -> None:
        self.schedulers = schedulers
        self.storage = storage
        self.metrics = metrics
        self.timeout = timeout

    async def enqueue(self, model: ServedModel, plan: Plan, call: Call) -> Ticket:
        """Queue the job behind its owner's earlier ones; a 503 now if the queue is full."""
        d = plan.delivery
        job, backend = plan.job, model.backend
        if job.render.seed is None:  # fixed now: the job's images may be split across runs
            job = replace(job, render=replace(job.render, seed=backend.default_seed(job)))
        ticket = Ticket(
            job=job,
            owner=call.caller.owner,
            encode=imaging.Encoding(d.output_format, d.compression, d.frame_duration_ms),
            deadline=time.monotonic() + self.timeout,
            key=backend.batch_key(job),
            limit=self.timeout,
            request_id=call.request_id,
            streamed=d.stream,
        )
        await self.schedulers[model.id].enter(ticket)
        return ticket

    async def answer(self, model: ServedModel, plan: Plan, call: Call) -> ImagesResponse | None:
        """The JSON body, or None when the client left first (its ticket is then abandoned)."""
        finished = await until_gone(self._finished(model, plan, call), call.gone)
        return None if finished is None else await self._body(model, plan, finished, call.origin)

    async def events(
        self, model: ServedModel, plan: Plan, ticket: Ticket, admission: Admission
    ) -> AsyncGenerator[Event, None]:
        """A queued ticket's partials and images as stream events, counted on `admission`."""
        prefix = EVENT_PREFIX[plan.job.operation]
        common = _resolved(plan)
        per_image = _per_image(plan.usage, plan.job.render.n)
        safety = plan.delivery.safety_identifier
        async with contextlib.aclosing(self.schedulers[model.id].results(ticket)) as results:
            async for item in results:
                yield _event(prefix, item, common, per_image, safety)
                admission.images += isinstance(item, Finished)

    async def _finished(self, model: ServedModel, plan: Plan, call: Call) -> list[Finished]:
        ticket = await self.enqueue(model, plan, call)
        events = self.schedulers[model.id].results(ticket)
        return [e async for e in events if isinstance(e, Finished)]

    async def _body(
        self, model: ServedModel, plan: Plan, finished: Sequence[Finished], origin: str | None
    ) -> ImagesResponse:
        delivery = plan.delivery
        body: ImagesResponse = {
            "created": int(time.time()),
            "data": [await self._item(model.id, plan, f, origin) for f in finished],
        }
        if delivery.gpt_fields:
            body = {**body, **_resolved(plan), "usage": plan.usage}
        if delivery.safety_identifier:
            body["safety_identifier"] = delivery.safety_identifier
        if delivery.output_format == "svg" and finished:
            author = delivery.svg_author or model.id
            prompt = getattr(plan.job, "prompt", None)
            body["svg_usage"] = svg_usage(prompt, finished[0].svg or "", author, delivery.svg_effort)
        return body

    async def _item(self, model_id: str, plan: Plan, finished: Finished, origin: str | None) -> ImageItem:
        delivery = plan.delivery
        item: ImageItem
        if delivery.response_format == "url":
            item = {
                "url": await store(
                    self.storage, self.metrics, model_id, finished.data, delivery.output_format, origin
                )
            }
        else:
            item = {"b64_json": imaging.b64(finished.data)}
        if delivery.revised_prompt and finished.revised_prompt is not None:
            item["revised_prompt"] = finished.revised_prompt
        if delivery.show_seed and finished.seed is not None:
            item["seed"] = finished.seed
        return item


async def store(
    storage: Storage, metrics: Metrics, model_id: str, data: bytes, fmt: str, origin: str | None
) -> str:
    """An image put in storage, timed; its signed public URL."""
    start = time.monotonic()
    stored = await storage.put(data, fmt, origin)
    metrics.stage_seconds.labels(model_id, "store").observe(time.monotonic() - start)
    return stored.url


def _event(
    prefix: str, item: Partial | Finished, common: Resolved, per_image: Usage, safety: str | None
) -> Event:
    b64 = imaging.b64(item.data)
    now = int(time.time())
    if isinstance(item, Partial):
        partial: PartialImageEvent = {
            "type": f"{prefix}.partial_image",
            "b64_json": b64,
            "created_at": now,
            **common,
            "partial_image_index": item.partial,
        }
        return partial["type"], partial
    completed: CompletedEvent = {
        "type": f"{prefix}.completed",
        "b64_json": b64,
        "created_at": now,
        "background": common["background"],
        "output_format": common["output_format"],
        "size": common["size"],
        "quality": common["quality"],
        "usage": per_image,
    }
    if safety:
        completed["safety_identifier"] = safety
    return completed["type"], completed


def _resolved(plan: Plan) -> Resolved:
    r, d = plan.job.render, plan.delivery
    return {
        "background": r.background,
        "output_format": d.output_format,
        "size": r.size,
        "quality": r.quality,
    }


def _per_image(total: Usage, n: int) -> Usage:
    """One completed event's share: the whole input, and its own image's output tokens."""
    out = total["output_tokens"] // n
    return {**total, "output_tokens": out, "total_tokens": total["input_tokens"] + out}
