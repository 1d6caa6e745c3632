"""ImageService: the use-cases (plan, generate/edit/vary, stream) between the HTTP layer and backends."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import anyio.to_thread
from PIL import Image

from . import errors, imaging
from .backends.base import Backend, Part
from .imaging import Limits, Upload
from .jobs import Delivery, Operation
from .metrics import Metrics
from .moderation import blocked
from .params import type_name
from .profiles import ModelRules, Plan
from .scheduler import Finished, Partial, Scheduler, Slice, Ticket, timed_out
from .storage import Storage

log = logging.getLogger("easel.service")

#: The stream's event type prefix per operation (CONTRACT §4).
EVENT_PREFIX = {"generations": "image_generation", "edits": "image_edit"}


@dataclass(frozen=True)
class ServedModel:
    """A model as served: its spec's rules and the backend instance that renders it."""

    rules: ModelRules
    backend: Backend

    @property
    def id(self) -> str:
        return self.rules.spec.id

    def describe(self, created: int) -> dict[str, Any]:
        """The /v1/models entry: OpenAI's four keys, then easel's capability keys."""
        spec = self.rules.spec
        return {
            "id": spec.id,
            "object": "model",
            "created": created,
            "owned_by": spec.owned_by,
            "profile": self.rules.profile,
            "strict": spec.strict,
            "backend": spec.backend,
            "sizes": list(spec.allowed_sizes),
            "default_size": spec.resolved_default_size,
            "default_quality": spec.resolved_default_quality,
            **self.rules.caps.describe(),
        }


class ImageService:
    """Validates requests into plans, runs them on their model's backend, and delivers the images."""

    def __init__(
        self,
        models: Sequence[ServedModel],
        default_model: str,
        storage: Storage,
        limits: Limits,
        cpu_workers: int = 1,
        timeout: float = 600.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.models: dict[str, ServedModel] = {m.id: m for m in models}
        # CPU-bound work (decode, render, encode) holds one of these; waiting is cheaper than
        # thrashing the cores and holding every request's pixels in memory at once.
        self.cpu = anyio.CapacityLimiter(cpu_workers)
        self.schedulers = {
            m.id: Scheduler(
                m.id,
                _runner(m, self.metrics),
                depth=m.rules.spec.max_queue,
                workers=m.backend.concurrency or cpu_workers,
                cpu=self.cpu,
                max_batch=m.rules.spec.max_batch_size or m.backend.default_batch_size,
                window=m.rules.spec.batch_window_ms / 1000,
                metrics=self.metrics,
            )
            for m in models
        }
        self.default_model = default_model
        self.storage = storage
        self.limits = limits
        self.timeout = timeout
        self.started = int(time.time())

    def start(self) -> None:
        """Start every model's scheduler (inside the running event loop)."""
        for scheduler in self.schedulers.values():
            scheduler.start()

    def drain(self) -> None:
        """Shutting down: refuse new work, answer the waiting with 503, let running work finish."""
        for scheduler in self.schedulers.values():
            scheduler.drain()

    async def stop(self) -> None:
        for scheduler in self.schedulers.values():
            await scheduler.stop()

    def model_for(self, raw: Mapping[str, Any]) -> ServedModel:
        """The requested model (type-checked), or the default; 404 when it is not served."""
        name = raw.get("model")
        if name is None:
            return self.models[self.default_model]
        if not isinstance(name, str):
            raise errors.invalid_type("model", "a string", type_name(name))
        model = self.models.get(name)
        if model is None:
            raise errors.model_not_found(name)
        return model

    async def plan(
        self,
        op: Operation,
        raw: Mapping[str, Any],
        files: Mapping[str, Sequence[Upload]],
        *,
        from_form: bool,
        json: bool = False,
    ) -> tuple[ServedModel, Plan]:
        """Validate a request completely before any work starts; decoding runs off the loop."""
        model = self.model_for(raw)
        if not files:  # nothing to decode: cheaper to stay on the loop
            plan = model.rules.plan(op, raw, files, from_form=from_form, json=json, limits=self.limits)
        else:
            plan = await anyio.to_thread.run_sync(
                lambda: model.rules.plan(op, raw, files, from_form=from_form, json=json, limits=self.limits),
                limiter=self.cpu,
            )
        model.backend.validate(plan.job)
        return model, plan

    def enqueue(self, model: ServedModel, plan: Plan, owner: str) -> Ticket:
        """Queue the job behind `owner`'s earlier ones; a 503 now if the queue is full."""
        d = plan.delivery
        job, backend = plan.job, model.backend
        if job.render.seed is None:  # fixed now: the job's images may be split across runs
            job = replace(job, render=replace(job.render, seed=backend.default_seed(job)))
        ticket = Ticket(
            job=job,
            owner=owner,
            encode=lambda image: imaging.encode(image, d.output_format, d.compression),
            deadline=time.monotonic() + self.timeout,
            key=backend.batch_key(job),
        )
        self.schedulers[model.id].submit(ticket)
        return ticket

    async def _results(self, model: ServedModel, ticket: Ticket) -> AsyncIterator[Partial | Finished]:
        """A queued ticket's partials and images as they come.

        If the consumer stops listening (the client left) the ticket is abandoned: it leaves
        the queue at once, or its render stops at the next step.
        """
        scheduler = self.schedulers[model.id]
        done = False
        try:
            while True:
                left = ticket.deadline - time.monotonic()
                try:
                    event = await asyncio.wait_for(ticket.events.get(), timeout=max(0.0, left) + 1.0)
                except TimeoutError:
                    raise timed_out(ticket) from None
                if event is None:
                    done = True
                    return
                if isinstance(event, BaseException):
                    done = True
                    raise event
                yield event
        finally:
            if not done:
                scheduler.abandon(ticket)

    # -- non-streaming -------------------------------------------------------------------

    async def run(self, model: ServedModel, plan: Plan, base_url: str, owner: str = "") -> dict[str, Any]:
        """Render, encode and deliver; the ImagesResponse body."""
        ticket = self.enqueue(model, plan, owner)
        finished = [e async for e in self._results(model, ticket) if isinstance(e, Finished)]
        delivery = plan.delivery
        data = [await self._item(model.id, e, delivery, base_url) for e in finished]
        body: dict[str, Any] = {"created": int(time.time()), "data": data}
        if delivery.gpt_fields:
            body.update(_resolved(plan))
            body["usage"] = plan.usage
        return body

    async def _item(
        self, model_id: str, finished: Finished, delivery: Delivery, base_url: str
    ) -> dict[str, Any]:
        item: dict[str, Any]
        if delivery.response_format == "url":
            start = time.monotonic()
            stored = await self.storage.put(finished.data, delivery.output_format, base_url)
            self.metrics.stage_seconds.labels(model_id, "store").observe(time.monotonic() - start)
            item = {"url": stored.url}
        else:
            item = {"b64_json": imaging.b64(finished.data)}
        rendered = finished.rendered
        if delivery.revised_prompt and rendered.revised_prompt is not None:
            item["revised_prompt"] = rendered.revised_prompt
        if delivery.show_seed and rendered.seed is not None:
            item["seed"] = rendered.seed
        return item

    # -- streaming -----------------------------------------------------------------------

    def stream(
        self, model: ServedModel, plan: Plan, owner: str = ""
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """Queue the job (a 503 now, before any event, if the queue is full) and return its
        events: (type, data) pairs, each image's partials, then its completed event."""
        return self._events(model, plan, self.enqueue(model, plan, owner))

    async def _events(
        self, model: ServedModel, plan: Plan, ticket: Ticket
    ) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        prefix = EVENT_PREFIX[plan.job.operation]
        common = _resolved(plan)
        per_image = _per_image(plan.usage, plan.job.render.n)
        async for item in self._results(model, ticket):
            event: dict[str, Any] = {
                "type": f"{prefix}.{'partial_image' if isinstance(item, Partial) else 'completed'}",
                "b64_json": imaging.b64(item.data),
                "created_at": int(time.time()),
                **common,
            }
            if isinstance(item, Partial):
                event["partial_image_index"] = item.partial
            else:
                event["usage"] = per_image
            yield event["type"], event


def _runner(model: ServedModel, metrics: Metrics) -> Callable[[Sequence[Slice]], None]:
    """What a scheduler's worker thread does with a batch: render, encode, post back."""
    encode_seconds = metrics.stage_seconds.labels(model.id, "encode")

    def run(batch: Sequence[Slice]) -> None:
        made = [0] * len(batch)

        def on_preview(number: int, index: int, partial: int, preview: Image.Image) -> None:
            ticket = batch[number].ticket
            if ticket.job.render.previews and not ticket.stop():
                ticket.post(Partial(index, partial, ticket.encode(preview)))

        def stop() -> bool:
            return all(s.ticket.stop() for s in batch)

        parts = [Part(s.ticket.job, s.start, s.count) for s in batch]
        try:
            for number, rendered in model.backend.run_batch(parts, on_preview, stop):
                ticket = batch[number].ticket
                flagged = (
                    ()
                    if ticket.stop()
                    else rendered.moderation or model.backend.moderate_output(ticket.job, rendered.image)
                )
                if flagged:  # the whole request is refused, as OpenAI does; its other slices stop
                    metrics.refusals.labels(model.id, "moderation").inc()
                    ticket.post(blocked(flagged, "output"))
                    ticket.abandoned = True
                elif not ticket.stop():
                    start = time.monotonic()
                    data = ticket.encode(rendered.image)
                    encode_seconds.observe(time.monotonic() - start)
                    metrics.images.labels(model.id, ticket.job.operation).inc()
                    ticket.post(Finished(rendered, data))
                    made[number] += 1
        except BaseException as exc:  # handed to each requester, which reports it
            for s in batch:
                s.ticket.abandoned = True  # its other slices, if any, are not run
                s.ticket.post(exc)
            return
        for s, count in zip(batch, made, strict=True):
            if count == s.count:
                if s.last:
                    s.ticket.post(None)
            elif not s.ticket.abandoned:
                s.ticket.post(timed_out(s.ticket))

    return run


def _resolved(plan: Plan) -> dict[str, Any]:
    r, d = plan.job.render, plan.delivery
    return {
        "background": r.background,
        "output_format": d.output_format,
        "size": r.size,
        "quality": r.quality,
    }


def _per_image(total: Mapping[str, Any], n: int) -> dict[str, Any]:
    """One completed event's share: the whole input, and its own image's output tokens."""
    out = int(total["output_tokens"]) // n
    return {**total, "output_tokens": out, "total_tokens": int(total["input_tokens"]) + out}


def stream_error(
    message: str,
    type: str = "image_generation_server_error",
    code: str | None = "image_generation_failed",
    extra: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The `event: error` payload for a failure after the stream started (CONTRACT §4)."""
    return {
        "type": "error",
        "error": {"type": type, "code": code, "message": message, "param": None, **(extra or {})},
    }
