"""ImageService: one use case per request (plan, route, admit, run, deliver, settle), for every endpoint."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import anyio.to_thread
import orjson

from .. import errors
from ..backends import RelayBackend, lifecycle
from ..contract import messages
from ..contract.params import type_name
from ..contract.references import RemotePolicy, collect
from ..contract.rules import ModelRules, Plan
from ..contract.tables import FILE_PARTS
from ..governance.gate import Admission, Gate
from ..imaging import Limits, Upload
from ..jobs import Operation
from ..memory import Hold
from ..metrics import Metrics
from ..scheduler import ModelQueue, Scheduler
from ..storage import Storage
from .calls import Asked, Call, Event, Route, ServedModel, Streamed, until_gone
from .local import Local
from .relayed import Relayed

log = logging.getLogger("easel.service")

#: Failures another model may retry: the backend's own. Not a client's error, not a request
#: that ran out of its time, not a server shutting down.
NOT_RETRIED = (errors.RequestTimeoutError, errors.ServiceUnavailableError)


class ImageService:
    """Validates requests into plans, routes them (to their model, or to its overflow), admits
    them through the gate, runs them locally or on an upstream (falling back where configured),
    and delivers the images as a JSON body or a stream."""

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
        queues: Mapping[str, ModelQueue] | None = None,
    ) -> None:
        """`queues`, by model id, are the queues of models rendered elsewhere (the Ray mode's
        replicas): their backends only plan here, and are never started here."""
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
        self.elsewhere = set(queues or {})
        self.schedulers: dict[str, ModelQueue] = {**(queues or {})}
        self.schedulers |= {
            m.id: Scheduler.serving(m.spec, m.backend, self.metrics, self.cpu, cpu_workers)
            for m in models
            if not isinstance(m.backend, RelayBackend) and m.id not in self.elsewhere
        }
        self.local = Local(self.schedulers, storage, self.metrics, timeout)
        self.relayed = Relayed(storage, self.metrics)
        self.default_model = default_model
        self.gate = gate
        self.limits = limits
        self.remote = remote
        self.draining = False
        self.started = int(time.time())
        #: The models whose backends are loading (their requests get a retryable 503); filled by
        #: `open`, so an app driven without its lifespan (some test clients) never waits on it.
        self.loading: set[str] = set()
        #: Why a model could not load, once one failed (`easel serve` then stops).
        self.failure: str | None = None
        #: Called once a model has failed to load (set by `easel serve`, to stop serving).
        self.on_failure: Callable[[], None] | None = None
        self._loader: asyncio.Task[None] | None = None

    # -- lifecycle -------------------------------------------------------------------------

    async def open(self, *, wait: bool = True) -> None:
        """Start the queues, then every backend (loading weights, in a thread for a `Backend`):
        awaited, or (`wait=False`) in the background while the server already answers."""
        self.loading = {m.id for m in self.here()}
        for scheduler in self.schedulers.values():
            scheduler.start()
        if wait:
            await self.load()
        else:
            self._loader = asyncio.create_task(self.load())
            self._loader.add_done_callback(self._loaded)

    async def load(self) -> None:
        """Start every backend in turn; a model that fails is `failure`, and the error is raised."""
        began = time.monotonic()
        for model in self.here():
            try:
                await lifecycle(model.backend, starting=True)
            except Exception as exc:
                self.failure = f"model {model.id!r} failed to load: {exc}"
                raise
            self.loading.discard(model.id)
            log.info("model %s loaded", model.id)
        log.info("easel is ready: every model has loaded (%.1f s)", time.monotonic() - began)

    def _loaded(self, loader: asyncio.Task[None]) -> None:
        if loader.cancelled() or loader.exception() is None:
            return
        log.error("%s; stopping", self.failure or f"loading failed: {loader.exception()!r}")
        if self.on_failure is not None:
            self.on_failure()

    def drain(self, grace: float | None = None) -> None:
        """Shutting down: refuse new work, answer the waiting with 503, let running work finish,
        and, `grace` seconds on, answer what still runs with a 503 too (its render stops)."""
        self.draining = True
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
        """Stop loading and the queues, then release every backend."""
        if self._loader is not None and not self._loader.done():
            self._loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._loader
        for scheduler in self.schedulers.values():
            await scheduler.stop()
        for model in self.here():
            await lifecycle(model.backend, starting=False)

    def here(self) -> list[ServedModel]:
        """The models whose backends run in this process."""
        return [m for m in self.models.values() if m.id not in self.elsewhere]

    # -- the use case ----------------------------------------------------------------------

    async def serve(
        self,
        op: Operation,
        fields: dict[str, Any],
        files: Mapping[str, Sequence[Upload]],
        call: Call,
        *,
        form: bool,
    ) -> bytes | Streamed | None:
        """One image request, start to end: the JSON body's bytes, a stream, or None when the
        client left before its images were ready. Refusals are APIErrors, raised before any work."""
        route = self.route_for(fields, op)
        call.model = route.id
        call.caller.check_model(route.id)
        asked = Asked(op, dict(fields), files, form)  # as sent: a JSON edit's references too
        plan = await self._plan(route, asked, hold=call.hold)
        call.prompt = getattr(plan.job, "prompt", None)
        served, plan = await self._place(route, plan, asked, call)
        admission = await self.gate.admit(call.caller, plan, call.request_id)
        call.headers.update(admission.headers)
        self._answered_by(served, call, admission)
        if plan.delivery.stream:
            with admission.if_refused():  # nothing sent yet: a refusal is an HTTP error, not an event
                events = await until_gone(self._open(served, plan, asked, call, admission), call.gone)
            if events is None:
                with admission:
                    admission.status = 499
                return None
            return Streamed(self._stream(events, call, admission))
        with admission:
            answered = await until_gone(self._answer(served, plan, asked, call, admission), call.gone)
            if answered is None:
                admission.status = 499
                return None
            content, admission.images = answered
        return content

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

    async def _plan(self, route: Route, asked: Asked, *, hold: Hold | None) -> Plan:
        """Validate the request completely before any work starts; decoding runs off the loop,
        each request's decoded pixels taken from `hold` before they are decoded."""
        rules, op, form = route.rules, asked.op, asked.form
        fields, files = dict(asked.fields), asked.files
        json = op == "edits" and not form
        relay = route.model.relay
        if relay is not None and relay.passthrough_unknown:  # sent on as they are, unchecked
            known = {*rules.params(op, json=json), *FILE_PARTS[op], "images", "mask"}
            fields = {k: v for k, v in fields.items() if k in known}
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

    # -- routing: overflow before admission, fallback after a failure ------------------------

    async def _place(self, route: Route, plan: Plan, asked: Asked, call: Call) -> tuple[Route, Plan]:
        """Where the request runs: its model, or (full, or waiting too long) its overflow target
        when that can serve it. A full queue refuses before the gate charges anything."""
        model = route.model
        spec = model.spec
        try:
            self._check_room(model)
        except errors.APIError as full:
            target = None if self.draining else await self._target(spec.overflow, route, asked, "overflow")
            if target is not None:
                return target
            self.gate.refused(call.caller, plan, call.request_id, full.status)
            raise
        wait = self.schedulers[model.id].estimated_wait() if model.id in self.schedulers else 0.0
        if spec.overflow_after_seconds is not None and wait > spec.overflow_after_seconds:
            target = await self._target(spec.overflow, route, asked, "overflow")
            if target is not None:
                return target
        return route, plan

    async def _target(
        self, target_id: str | None, route: Route, asked: Asked, reason: str
    ) -> tuple[Route, Plan] | None:
        """The route and plan of `target_id` for this request, or None when it cannot take it:
        skipped after failures, full, or unable to serve the request's parameters."""
        if target_id is None:
            return None
        target = self.routes[target_id]
        model = route.model
        if not target.model.available:
            log.info("%s of %s: %s is skipped after repeated failures", reason, model.id, target_id)
            return None
        try:
            plan = await self._plan(
                target, replace(asked, fields={**asked.fields, "model": target_id}), hold=None
            )
            self._check_room(target.model)
        except errors.APIError as exc:
            log.info("%s of %s: %s cannot take this request: %s", reason, model.id, target_id, exc.message)
            return None
        self.metrics.rerouted.labels(model.id, target.model.id, reason).inc()
        return target, plan

    def _check_room(self, model: ServedModel) -> None:
        relay = model.relay
        if self.draining:
            raise errors.overloaded("The server is shutting down.", 1.0)
        if model.id in self.loading:
            raise errors.ServiceUnavailableError(
                f"The model '{model.id}' is still loading; retry shortly.",
                code="model_loading",
                headers=errors.retry_headers(2.0),
            )
        if relay is not None:
            relay.check_room()
        else:
            self.schedulers[model.id].check_room()

    def _answered_by(self, route: Route, call: Call, admission: Admission) -> None:
        call.headers["x-easel-served-by"] = route.model.id
        admission.served_by = route.model.id

    async def _fallback(self, route: Route, asked: Asked, exc: BaseException) -> tuple[Route, Plan] | None:
        """Where to retry a request its model failed, if anywhere."""
        if isinstance(exc, NOT_RETRIED) or (isinstance(exc, errors.APIError) and exc.status < 500):
            return None
        if isinstance(exc, asyncio.CancelledError) or not isinstance(exc, Exception):
            return None
        target = await self._target(route.model.spec.fallback, route, asked, "fallback")
        if target is not None:
            log.warning(
                "model %s failed (%s); falling back to %s", route.model.id, _said(exc), target[0].model.id
            )
        return target

    # -- running ------------------------------------------------------------------------------

    async def _answer(
        self, route: Route, plan: Plan, asked: Asked, call: Call, admission: Admission
    ) -> tuple[bytes, int] | None:
        try:
            return await self._answer_on(route, plan, asked, call, admission)
        except Exception as exc:
            target = await self._fallback(route, asked, exc)
            if target is None:
                raise
            self._answered_by(target[0], call, admission)
            return await self._answer_on(*target, asked, call, admission)

    async def _answer_on(
        self, route: Route, plan: Plan, asked: Asked, call: Call, admission: Admission
    ) -> tuple[bytes, int] | None:
        """The JSON body's bytes and its image count, or None when the client left first."""
        if route.model.relay is not None:
            return await self.relayed.answer(route, plan, asked, call, admission)
        body = await self.local.answer(route.model, plan, call)
        return None if body is None else (orjson.dumps(body), len(body["data"]))

    async def _open(
        self, route: Route, plan: Plan, asked: Asked, call: Call, admission: Admission
    ) -> AsyncGenerator[Event, None]:
        """A stream's events, opened: an upstream has answered 200, or, where a fallback is set,
        the first event has come (until then a failure can still go elsewhere)."""
        try:
            return await self._open_on(
                route, plan, asked, call, admission, prime=route.model.spec.fallback is not None
            )
        except Exception as exc:
            target = await self._fallback(route, asked, exc)
            if target is None:
                # Nothing was sent: an upstream's refusal, or a queue's 503 (the SDKs retry
                # it), is an HTTP error; a render's failure stays an `event: error`, as always.
                if route.model.relay is not None or isinstance(exc, errors.ServiceUnavailableError):
                    raise
                return _failing(exc)
            self._answered_by(target[0], call, admission)
            return await self._open_on(*target, asked, call, admission, prime=False)

    async def _open_on(
        self, route: Route, plan: Plan, asked: Asked, call: Call, admission: Admission, *, prime: bool
    ) -> AsyncGenerator[Event, None]:
        if route.model.relay is not None:
            return await self.relayed.open(route, plan, asked, call, admission)
        ticket = await self.local.enqueue(route.model, plan, call)
        events = self.local.events(route.model, plan, ticket, admission)
        if not prime:
            return events
        first = await anext(events)
        return _chained(first, events)

    async def _stream(
        self, events: AsyncGenerator[Event, None], call: Call, admission: Admission
    ) -> AsyncGenerator[Event, None]:
        """A stream's events, which settle the request however it ends: a failure is an `error` event."""
        with admission:
            try:
                async with contextlib.aclosing(events) as opened:
                    async for event in opened:
                        yield event
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


async def _chained(first: Event, rest: AsyncGenerator[Event, None]) -> AsyncGenerator[Event, None]:
    async with contextlib.aclosing(rest):
        yield first
        async for event in rest:
            yield event


async def _failing(exc: Exception) -> AsyncGenerator[Event, None]:
    raise exc
    yield  # a generator, that fails when first read


def _said(exc: BaseException) -> str:
    return f"{exc.status} {exc.message}" if isinstance(exc, errors.APIError) else type(exc).__name__
