"""Scheduler: a bounded fair queue per model, batched runs, and the ticket protocol of requests and runs."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field

import anyio
import anyio.to_thread
from PIL import Image

from . import errors
from .backends.base import AsyncBackend, Backend, Part
from .jobs import Job, Rendered
from .metrics import Metrics

log = logging.getLogger("easel.scheduler")


@dataclass(frozen=True)
class Partial:
    index: int
    partial: int
    data: bytes


@dataclass(frozen=True)
class Finished:
    rendered: Rendered
    data: bytes


#: What a ticket's consumer receives: partials, finished images, then None (or an exception).
Event = Partial | Finished | BaseException | None


@dataclass(eq=False)
class Ticket:
    """One request's place in a model's queue, and the channel its results come back on."""

    job: Job
    owner: str
    #: A finished image (or a preview, as a Rendered of its own) in the bytes the client asked for.
    encode: Callable[[Rendered], bytes]
    deadline: float
    #: Equal keys may share a pipeline run; None runs alone (set by the scheduler).
    key: Hashable | None = None
    #: The configured time limit, in seconds, for the 504's message (0: from the deadline).
    limit: float = 0.0
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    enqueued: float = field(default_factory=time.monotonic)
    #: The next of the job's images not yet handed to a run.
    taken: int = 0
    #: Set when the requester left or ran out of time: the backend stops at its next step.
    abandoned: bool = False

    @property
    def n(self) -> int:
        return self.job.render.n

    def stop(self) -> bool:
        """Whether its images are still wanted: false once the requester left or time ran out."""
        return self.abandoned or time.monotonic() > self.deadline

    def post(self, event: Event) -> None:
        """Hand an event to the requester; safe from any thread."""
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)


@dataclass(frozen=True)
class Slice:
    """Images `start` .. `start + count - 1` of a ticket, in one run."""

    ticket: Ticket
    start: int
    count: int

    @property
    def last(self) -> bool:
        return self.start + self.count == self.ticket.n


#: What a scheduler's worker does with a batch: render it and post every event to its tickets.
Runner = Callable[[Sequence[Slice]], Awaitable[None]]


class FairQueue:
    """Waiting tickets in one lane per owner, taken round-robin: an owner's oldest first.

    Its size (what `depth` bounds) counts the requests not yet started; a request split across
    runs keeps its rest at the head of its lane without counting again.
    """

    def __init__(self, depth: int) -> None:
        self.depth = depth
        self.lanes: OrderedDict[str, deque[Ticket]] = OrderedDict()
        self.size = 0

    def __len__(self) -> int:
        return self.size

    def put(self, ticket: Ticket) -> bool:
        if self.size >= self.depth:
            return False
        self.lanes.setdefault(ticket.owner, deque()).append(ticket)
        self.size += 1
        return True

    def pop(self) -> Ticket | None:
        """The next owner's oldest ticket, whole (its owner moves to the back of the round)."""
        taken = self.take(1, whole=True)
        return taken[0].ticket if taken else None

    def take(self, room: int, key: Hashable | None = None, *, whole: bool = False) -> list[Slice]:
        """Up to `room` images, round-robin over the owners, from tickets whose key is `key`.

        With no `key` the first ticket sets it (a None key: that ticket alone). A ticket larger
        than the room is split: its rest stays at the head of its lane. `whole` takes the
        first ticket entire, room or not.
        """
        out: list[Slice] = []
        progress = True
        while room > 0 and progress and self.lanes:
            progress = False
            for owner in list(self.lanes):
                lane = self.lanes[owner]
                head = lane[0]
                if out and (key is None or head.key != key):
                    continue
                if not out:
                    key = head.key
                count = head.n - head.taken if whole or key is None else min(room, head.n - head.taken)
                if head.taken == 0:  # started: no longer waiting, though its rest may be queued
                    self.size -= 1
                out.append(Slice(head, head.taken, count))
                head.taken += count
                room -= count
                progress = True
                if head.taken == head.n:
                    lane.popleft()
                del self.lanes[owner]
                if lane:  # the owner goes to the back of the round
                    self.lanes[owner] = lane
                if key is None or room <= 0 or whole:
                    return out
        return out

    def remove(self, ticket: Ticket) -> bool:
        lane = self.lanes.get(ticket.owner)
        if lane is None or ticket not in lane:
            return False
        lane.remove(ticket)
        if not lane:
            del self.lanes[ticket.owner]
        if ticket.taken == 0:
            self.size -= 1
        return True

    def drain(self) -> list[Ticket]:
        """Remove and return every ticket not yet started; started ones keep their rest queued."""
        waiting = [t for lane in self.lanes.values() for t in lane if t.taken == 0]
        for ticket in waiting:
            self.remove(ticket)
        return waiting


class Scheduler:
    """Runs one model's tickets on `workers` worker tasks (a `Runner` each: see `runner_for`).

    A worker takes the next owner's ticket, then, for batchable work, waits up to `window`
    seconds for compatible tickets (any owner's, round-robin) to fill `max_batch` images, and
    runs them as one. Past `depth` waiting requests, or once draining, a submission is refused
    with 503 `server_overloaded` and a retry time estimated from the measured service rate.
    """

    def __init__(
        self,
        model_id: str,
        run: Runner,
        *,
        depth: int,
        workers: int,
        max_batch: int = 1,
        window: float = 0.0,
        metrics: Metrics | None = None,
    ) -> None:
        self.model_id = model_id
        self.run = run
        self.queue = FairQueue(depth)
        self.workers = workers
        self.max_batch = max(1, max_batch)
        self.window = window
        self.running = 0
        #: The tickets of the runs in progress (what a shutdown gives up on, past its grace).
        self.in_flight: set[Ticket] = set()
        self.draining = False
        #: Smoothed seconds per run, from what has run (a guess of 1 s before anything has).
        self.seconds_per_run = 1.0
        #: Requests a run waits for: as many as the last run had (at first, a full batch).
        self.expected = self.max_batch
        self._ready: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.metrics = metrics or Metrics()
        self.metrics.queue_depth.labels(model_id).set_function(lambda: len(self.queue))
        self.metrics.running.labels(model_id).set_function(lambda: self.running)

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        self.draining = False
        self._loop = asyncio.get_running_loop()
        self._ready = asyncio.Event()
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self.workers)]

    def drain(self) -> None:
        """Refuse new work and answer everything still waiting with a 503; running work goes on."""
        self.draining = True
        for ticket in self.queue.drain():
            ticket.post(self._overloaded("The server is shutting down.", "shutting_down"))

    def give_up(self, message: str) -> int:
        """The shutdown's grace is over: answer every started request (503, or a stream's error
        event) and stop its run at the next step. Returns how many there were."""
        started = self.in_flight | {t for lane in self.queue.lanes.values() for t in lane if t.taken}
        for ticket in started:
            if not ticket.abandoned:
                ticket.post(self._overloaded(message, "shutting_down"))
                ticket.abandoned = True
        return len(started)

    async def stop(self) -> None:
        self.drain()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- submitting and leaving -----------------------------------------------------------

    def check_room(self) -> None:
        """The 503 a submission would get now, raised before anything is charged for it."""
        if self.draining:
            raise self._overloaded("The server is shutting down.", "shutting_down")
        if len(self.queue) >= self.queue.depth:
            raise self._overloaded(
                f"The server is overloaded: {len(self.queue)} requests are waiting.", "overloaded"
            )

    def submit(self, ticket: Ticket) -> None:
        if self._loop is not asyncio.get_running_loop():
            # An app driven without its lifespan, as some test clients do (a loop per request).
            self.start()
        if self.draining:
            raise self._overloaded("The server is shutting down.", "shutting_down")
        if not self.queue.put(ticket):
            waiting = len(self.queue)
            raise self._overloaded(f"The server is overloaded: {waiting} requests are waiting.", "overloaded")
        assert self._ready is not None
        self._ready.set()

    async def results(self, ticket: Ticket) -> AsyncGenerator[Partial | Finished, None]:
        """A submitted ticket's partials and images as they come, until its last image.

        If the consumer stops listening (the client left) the ticket is abandoned: it leaves
        the queue at once, or its render stops at the next step.
        """
        done = False
        try:
            while True:
                left = ticket.deadline - time.monotonic()
                try:
                    event = await asyncio.wait_for(ticket.events.get(), timeout=max(0.0, left) + 1.0)
                except TimeoutError:
                    raise timed_out(ticket) from None
                if event is None or isinstance(event, BaseException):
                    done = True
                    if event is None:
                        return
                    raise event
                yield event
        finally:
            if not done:
                self.abandon(ticket)

    def abandon(self, ticket: Ticket) -> None:
        """The requester is gone: free its queue slot now, or stop its render at the next step."""
        ticket.abandoned = True
        if self.queue.remove(ticket):
            log.info("model %s: request left the queue (%d waiting)", self.model_id, len(self.queue))

    def retry_after(self) -> float:
        """Seconds until a slot is likely free: the runs ahead of it at the measured rate."""
        runs_ahead = self.running + math.ceil(len(self.queue) / self.max_batch)
        return max(0.05, runs_ahead * self.seconds_per_run / max(1, self.workers))

    def _overloaded(self, message: str, reason: str) -> errors.ServiceUnavailableError:
        self.metrics.refusals.labels(self.model_id, reason).inc()
        return errors.overloaded(message, self.retry_after())

    # -- the workers ----------------------------------------------------------------------

    async def _next_batch(self) -> list[Slice]:
        assert self._ready is not None
        while not (batch := self.queue.take(self.max_batch)):
            self._ready.clear()
            await self._ready.wait()
        key, room = batch[0].ticket.key, self.max_batch - sum(s.count for s in batch)
        # Wait for as many requests as the last run had (its clients are likely coming back),
        # never longer than the window: a lone client pays nothing.
        closes = time.monotonic() + self.window
        while (
            key is not None
            and room > 0
            and len(batch) < self.expected
            and (left := closes - time.monotonic()) > 0
        ):
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), left)
            more = self.queue.take(room, key)
            batch += more
            room -= sum(s.count for s in more)
        return batch

    async def _worker(self) -> None:
        while True:
            batch = await self._next_batch()
            live = [s for s in batch if not s.ticket.stop()]
            for s in batch:
                if s.ticket.stop() and not s.ticket.abandoned:
                    s.ticket.post(timed_out(s.ticket))
            if not live:
                continue
            started = time.monotonic()
            tickets = {s.ticket for s in live}
            self.running += 1
            self.in_flight |= tickets
            try:
                await self.run(live)
            finally:
                self.running -= 1
                self.in_flight -= tickets
            self._ran(live, started, time.monotonic() - started)

    def _ran(self, live: Sequence[Slice], started: float, took: float) -> None:
        """Learn from a finished run (its time, its size) and report it: metrics and a log line."""
        self.seconds_per_run = 0.7 * self.seconds_per_run + 0.3 * took
        self.expected = len(live)
        images, m = sum(s.count for s in live), self.metrics
        m.stage_seconds.labels(self.model_id, "generate").observe(took)
        m.batch_images.labels(self.model_id).observe(images)
        for s in live:
            if s.start == 0:  # a request's wait is counted once, at its first run
                m.stage_seconds.labels(self.model_id, "queue").observe(started - s.ticket.enqueued)
        waited = max(started - s.ticket.enqueued for s in live)
        log.info(
            "model %s: ran %s, batch of %d image(s) from %d request(s), in %.0f ms; longest wait %.0f ms; "
            "%d waiting", self.model_id, live[0].ticket.job.operation, images, len(live), took * 1000,
            waited * 1000, len(self.queue),
        )  # fmt: skip


def timed_out(ticket: Ticket) -> errors.APIError:
    return errors.RequestTimeoutError(ticket.limit or ticket.deadline - ticket.enqueued)


class _Run:
    """One run's side of the ticket protocol: previews, then each image checked, encoded and
    posted to its ticket; at the end, each slice's last image closes its ticket."""

    def __init__(
        self, model_id: str, backend: Backend | AsyncBackend, metrics: Metrics, batch: Sequence[Slice]
    ):
        self.model_id, self.backend, self.metrics, self.batch = model_id, backend, metrics, batch
        self.made = [0] * len(batch)
        self.parts = [Part(s.ticket.job, s.start, s.count) for s in batch]

    def preview(self, number: int, index: int, partial: int, preview: Image.Image) -> None:
        ticket = self.batch[number].ticket
        if ticket.job.render.previews and not ticket.stop():
            ticket.post(Partial(index, partial, ticket.encode(Rendered(image=preview))))

    def stop(self) -> bool:
        return all(s.ticket.stop() for s in self.batch)

    def deliver(self, number: int, rendered: Rendered) -> None:
        ticket = self.batch[number].ticket
        if ticket.stop():
            return
        flagged = rendered.moderation or self.backend.moderate_output(ticket.job, rendered.image)
        if flagged:  # the whole request is refused, as OpenAI does; its other slices stop
            self.metrics.refusals.labels(self.model_id, "moderation").inc()
            ticket.post(errors.ModerationBlockedError(tuple(flagged), "output"))
            ticket.abandoned = True
            return
        start = time.monotonic()
        data = ticket.encode(rendered)
        self.metrics.stage_seconds.labels(self.model_id, "encode").observe(time.monotonic() - start)
        self.metrics.images.labels(self.model_id, ticket.job.operation).inc()
        ticket.post(Finished(rendered, data))
        self.made[number] += 1

    def fail(self, exc: BaseException) -> None:
        """Hand the failure to each requester, which reports it."""
        for s in self.batch:
            s.ticket.abandoned = True  # its other slices, if any, are not run
            s.ticket.post(exc)

    def finish(self) -> None:
        for s, count in zip(self.batch, self.made, strict=True):
            if count == s.count:
                if s.last:
                    s.ticket.post(None)
            elif not s.ticket.abandoned:
                s.ticket.post(timed_out(s.ticket))


def runner_for(
    model_id: str, backend: Backend | AsyncBackend, metrics: Metrics, cpu: anyio.CapacityLimiter
) -> Runner:
    """How a model's batches run: a `Backend` in a worker thread holding one CPU slot for the
    whole run; an `AsyncBackend` on the event loop, taking a slot only to check and encode."""
    if isinstance(backend, AsyncBackend):
        return _on_loop(model_id, backend, metrics, cpu)

    def run(batch: Sequence[Slice]) -> None:
        run = _Run(model_id, backend, metrics, batch)
        try:
            for number, rendered in backend.run_batch(run.parts, run.preview, run.stop):
                run.deliver(number, rendered)
        except BaseException as exc:
            run.fail(exc)
            return
        run.finish()

    async def in_thread(batch: Sequence[Slice]) -> None:
        await anyio.to_thread.run_sync(run, batch, limiter=cpu)

    return in_thread


def _on_loop(model_id: str, backend: AsyncBackend, metrics: Metrics, cpu: anyio.CapacityLimiter) -> Runner:
    async def run(batch: Sequence[Slice]) -> None:
        run = _Run(model_id, backend, metrics, batch)
        try:
            for number, part in enumerate(run.parts):

                async def sink(index: int, partial: int, image: Image.Image, n: int = number) -> None:
                    start = run.parts[n].start  # the part's images are numbered from 0 in `alone`
                    await anyio.to_thread.run_sync(run.preview, n, start + index, partial, image, limiter=cpu)

                async for rendered in backend.render(part.alone(), sink, run.stop):
                    await anyio.to_thread.run_sync(run.deliver, number, rendered, limiter=cpu)
        except BaseException as exc:
            run.fail(exc)
            if not isinstance(exc, Exception):
                raise
            return
        run.finish()

    return run
