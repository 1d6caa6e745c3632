"""ImageService: one use case per request, plan → admit → queue → deliver → settle, for every endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import anyio.to_thread

from . import errors, imaging
from .backends import AnyBackend, AsyncBackend
from .contract import messages
from .contract.listing import model_entry
from .contract.params import type_name
from .contract.references import RemotePolicy, collect
from .contract.responses import (
    CompletedEvent,
    ImageItem,
    ImagesResponse,
    ModelEntry,
    PartialImageEvent,
    Resolved,
    StreamError,
    Usage,
)
from .contract.rules import ModelRules, Plan
from .contract.usage import svg_usage
from .governance.auth import Caller
from .governance.gate import Admission, Gate
from .imaging import Limits, Upload
from .jobs import Operation
from .memory import Hold
from .metrics import Metrics
from .scheduler import Finished, Partial, Scheduler, Ticket, runner_for
from .settings import ModelSpec
from .storage import Storage

log = logging.getLogger("easel.service")
T = TypeVar("T")

#: The stream's event type prefix per operation (CONTRACT §4).
EVENT_PREFIX = {"generations": "image_generation", "edits": "image_edit"}
#: A stream event: its type and its data.
Event = tuple[str, PartialImageEvent | CompletedEvent | StreamError]


@dataclass(frozen=True)
class ServedModel:
    """A model as served: one backend instance and one queue, answering one or more ids."""

    spec: ModelSpec
    backend: AnyBackend

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True)
class Route:
    """One id a client may name: the rules it follows, and the served model that answers it."""

    rules: ModelRules
    model: ServedModel

    @property
    def id(self) -> str:
        return self.rules.id

    def describe(self, created: int) -> ModelEntry:
        """The /v1/models entry of this id."""
        return model_entry(self.rules, self.model.id, created)


@dataclass(eq=False)
class Call:
    """One request as the service sees it: who asks and how to reach them, and what the HTTP
    layer reads back for its logs, metrics and headers."""

    caller: Caller
    request_id: str
    #: Where the client reached easel, as a trusted proxy forwarded it (None: the configured base).
    origin: str | None = None
    #: Returns once the client has gone (None: never asked).
    gone: Callable[[], Awaitable[None]] | None = None
    #: The served model it named, once looked up.
    model: str | None = None
    #: Its prompt, once validated (logged only with `log_prompts`).
    prompt: str | None = None
    #: Headers every answer to it carries, errors included: its rate limits, once admitted.
    headers: dict[str, str] = field(default_factory=dict)
    #: Its share of the server's buffered bytes (None: not bounded), grown as images decode.
    hold: Hold | None = None


@dataclass(frozen=True)
class Streamed:
    """A queued stream: its events, each image's partials then its completed event; a failure
    after the first event is an `error` event. It settles the request when it ends."""

    events: AsyncGenerator[Event, None]


async def until_gone(work: Awaitable[T], gone: Callable[[], Awaitable[None]] | None) -> T | None:
    """`work`'s result, or None once the client has gone: `work` is then cancelled, which frees
    its queue slot or stops its render at the next step."""
    if gone is None:
        return await work
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(gone())
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()


class ImageService:
    """Validates requests into plans, admits them through the gate, runs them on their model's
    scheduler, and delivers the images as a JSON body or a stream."""

    def __init__(
        self,
        models: Sequence[ServedModel],
        default_model: str,
        *,
        gate: Gate,
        storage: Storage,
        limits: Limits,
        remote: RemotePolicy,
        cpu_workers: int = 1,
        timeout: float = 600.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.metrics = metrics or Metrics()
        self.models: dict[str, ServedModel] = {m.id: m for m in models}
        self.routes: dict[str, Route] = {
            model_id: Route(ModelRules(m.spec, m.backend.capabilities, model_id), m)
            for m in models
            for model_id in m.spec.ids
        }
        # CPU-bound work (decode, render, encode) holds one of these; waiting is cheaper than
        # thrashing the cores and holding every request's pixels in memory at once.
        self.cpu = anyio.CapacityLimiter(cpu_workers)
        self.schedulers = {
            m.id: Scheduler(
                m.id,
                runner_for(m.id, m.backend, self.metrics, self.cpu),
                depth=m.spec.max_queue,
                workers=m.backend.concurrency or cpu_workers,
                max_batch=m.spec.max_batch_size or m.backend.default_batch_size,
                window=m.spec.batch_window_ms / 1000,
                metrics=self.metrics,
            )
            for m in models
        }
        self.default_model = default_model
        self.gate = gate
        self.storage = storage
        self.limits = limits
        self.remote = remote
        self.timeout = timeout
        self.started = int(time.time())

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self) -> None:
        """Start every backend (loading weights, in a thread for a `Backend`), then the queues."""
        for model in self.models.values():
            await _lifecycle(model.backend, starting=True)
        for scheduler in self.schedulers.values():
            scheduler.start()

    def drain(self, grace: float | None = None) -> None:
        """Shutting down: refuse new work, answer the waiting with 503, let running work finish,
        and, `grace` seconds on, answer what still runs with a 503 too (its render stops)."""
        for scheduler in self.schedulers.values():
            scheduler.drain()
        if grace is not None:
            asyncio.get_running_loop().call_later(grace, self._give_up, grace)

    def _give_up(self, grace: float) -> None:
        message = (
            f"The server is shutting down, and this request did not finish within the {grace:g} s "
            "it allows running work. Retry it."
        )
        given_up = sum(scheduler.give_up(message) for scheduler in self.schedulers.values())
        if given_up:
            log.info("shutting down: %d running request(s) past the %g s grace answered 503", given_up, grace)

    async def close(self) -> None:
        """Stop the queues, then release every backend."""
        for scheduler in self.schedulers.values():
            await scheduler.stop()
        for model in self.models.values():
            await _lifecycle(model.backend, starting=False)

    # -- the use case ----------------------------------------------------------------------

    async def serve(
        self,
        op: Operation,
        fields: dict[str, Any],
        files: Mapping[str, Sequence[Upload]],
        call: Call,
        *,
        form: bool,
    ) -> ImagesResponse | Streamed | None:
        """One image request, start to end: the JSON body, a queued stream, or None when the
        client left before its images were ready. Refusals are APIErrors, raised before any work."""
        route = self.route_for(fields, op)
        call.model = route.id
        call.caller.check_model(route.id)
        model = route.model
        plan = await self._plan(route, op, fields, files, form=form, hold=call.hold)
        call.prompt = getattr(plan.job, "prompt", None)
        try:  # a full queue refuses before the gate charges anything: overload sheds cheaply
            self.schedulers[model.id].check_room()
        except errors.APIError as exc:
            self.gate.refused(call.caller, plan, call.request_id, exc.status)
            raise
        admission = await self.gate.admit(call.caller, plan, call.request_id)
        call.headers.update(admission.headers)
        if plan.delivery.stream:
            with admission.if_refused():  # queued now: a full queue is a 503, not an error event
                ticket = self._enqueue(model, plan, call.caller.owner)
            return Streamed(self._events(model, plan, ticket, call, admission))
        with admission:
            ticket = self._enqueue(model, plan, call.caller.owner)
            finished = await until_gone(self._finished(model, ticket), call.gone)
            if finished is None:
                admission.status = 499
                return None
            body = await self._body(model, plan, finished, call.origin)
            admission.images = len(body["data"])
        return body

    def route_for(self, raw: Mapping[str, Any], op: Operation) -> Route:
        """The requested id (type-checked), or the endpoint's default: dall-e-2 for variations,
        as OpenAI documented, when it is served; 404 when it is not served."""
        name = raw.get("model")
        if name is None:
            default = "dall-e-2" if op == "variations" and "dall-e-2" in self.routes else self.default_model
            return self.routes[default]
        if not isinstance(name, str):
            raise messages.invalid_type("model", "a string", type_name(name))
        route = self.routes.get(name)
        if route is None:
            raise messages.model_not_found(name)
        return route

    async def _plan(
        self,
        route: Route,
        op: Operation,
        fields: dict[str, Any],
        files: Mapping[str, Sequence[Upload]],
        *,
        form: bool,
        hold: Hold | None,
    ) -> Plan:
        """Validate the request completely before any work starts; decoding runs off the loop,
        each request's decoded pixels taken from `hold` before they are decoded."""
        rules = route.rules
        json = op == "edits" and not form
        if json:  # the images are references in the body: data: URLs, or fetched when allowed
            rules.check_operation(op, json=True)
            files = await collect(fields, self.remote)
            if hold is not None:
                hold.take(sum(len(u.data) for parts in files.values() for u in parts))
        reserve = hold.take_pixels if hold is not None else None

        def resolve() -> Plan:
            limits = self.limits
            return rules.plan(op, fields, files, from_form=form, json=json, limits=limits, reserve=reserve)

        # Nothing to decode: cheaper to stay on the loop.
        plan = await anyio.to_thread.run_sync(resolve, limiter=self.cpu) if files else resolve()
        route.model.backend.validate(plan.job)
        return plan

    def _enqueue(self, model: ServedModel, plan: Plan, owner: str) -> Ticket:
        """Queue the job behind `owner`'s earlier ones; a 503 now if the queue is full."""
        d = plan.delivery
        job, backend = plan.job, model.backend
        if job.render.seed is None:  # fixed now: the job's images may be split across runs
            job = replace(job, render=replace(job.render, seed=backend.default_seed(job)))
        ticket = Ticket(
            job=job,
            owner=owner,
            encode=lambda rendered: imaging.encode_rendered(
                rendered, d.output_format, d.compression, d.frame_duration_ms
            ),
            deadline=time.monotonic() + self.timeout,
            key=backend.batch_key(job),
            limit=self.timeout,
        )
        self.schedulers[model.id].submit(ticket)
        return ticket

    async def _finished(self, model: ServedModel, ticket: Ticket) -> list[Finished]:
        events = self.schedulers[model.id].results(ticket)
        return [e async for e in events if isinstance(e, Finished)]

    # -- delivery --------------------------------------------------------------------------

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
            body["svg_usage"] = svg_usage(prompt, finished[0].rendered.svg or "", author, delivery.svg_effort)
        return body

    async def _item(self, model_id: str, plan: Plan, finished: Finished, origin: str | None) -> ImageItem:
        delivery = plan.delivery
        item: ImageItem
        if delivery.response_format == "url":
            start = time.monotonic()
            stored = await self.storage.put(finished.data, delivery.output_format, origin)
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

    async def _events(
        self, model: ServedModel, plan: Plan, ticket: Ticket, call: Call, admission: Admission
    ) -> AsyncGenerator[Event, None]:
        """A queued ticket's stream, which settles the request however it ends."""
        with admission:
            prefix = EVENT_PREFIX[plan.job.operation]
            common = _resolved(plan)
            per_image = _per_image(plan.usage, plan.job.render.n)
            safety = plan.delivery.safety_identifier
            try:
                async with contextlib.aclosing(self.schedulers[model.id].results(ticket)) as results:
                    async for item in results:
                        yield _event(prefix, item, common, per_image, safety)
                        admission.images += isinstance(item, Finished)
            except Exception as exc:
                status = exc.status if isinstance(exc, errors.APIError) else 500
                if not isinstance(exc, errors.APIError):  # our bug: the cause goes to the log only
                    log.exception("stream failed (request id %s)", call.request_id)
                elif status >= 500:  # a known failure (out of memory, a shutdown): said, not traced
                    log.warning(
                        "stream ended with %d %s (request id %s)", status, exc.message, call.request_id
                    )
                admission.status = status
                yield "error", errors.stream_payload(exc, call.request_id)


async def _lifecycle(backend: AnyBackend, *, starting: bool) -> None:
    """Start or close a backend: a coroutine on the loop, or a `Backend`'s hook in a thread."""
    if isinstance(backend, AsyncBackend):
        await (backend.start() if starting else backend.close())
    else:
        await anyio.to_thread.run_sync(backend.start if starting else backend.close)


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
