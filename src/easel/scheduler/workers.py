"""Scheduler: one model's bounded queue and the workers that run its batches; drain and give up."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import AsyncGenerator, Sequence
from typing import TYPE_CHECKING

import anyio

from .. import errors
from ..metrics import Metrics
from .queue import FairQueue
from .runs import runner_for
from .tickets import Finished, Partial, Runner, Slice, Ticket, receive, timed_out

if TYPE_CHECKING:
    from ..backends.base import Renderer
    from ..settings import ModelSpec

log = logging.getLogger("easel.scheduler")


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

    @classmethod
    def serving(
        cls,
        spec: ModelSpec,
        backend: Renderer,
        metrics: Metrics,
        cpu: anyio.CapacityLimiter,
        cpu_workers: int,
    ) -> Scheduler:
        """A model's scheduler as configured: its queue's depth, its workers, batches and window."""
        return cls(
            spec.id,
            runner_for(spec.id, backend, metrics, cpu),
            depth=spec.max_queue,
            workers=backend.concurrency or cpu_workers,
            max_batch=spec.max_batch_size or backend.default_batch_size,
            window=spec.batch_window_ms / 1000,
            metrics=metrics,
        )

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

    async def enter(self, ticket: Ticket) -> None:
        """`submit`, as the `ModelQueue` protocol has it."""
        self.submit(ticket)

    def results(self, ticket: Ticket) -> AsyncGenerator[Partial | Finished, None]:
        """A submitted ticket's partials and images as they come, until its last image.

        If the consumer stops listening (the client left) the ticket is abandoned: it leaves
        the queue at once, or its render stops at the next step.
        """
        return receive(ticket, self.abandon)

    def abandon(self, ticket: Ticket) -> None:
        """The requester is gone: free its queue slot now, or stop its render at the next step."""
        ticket.abandoned = True
        if self.queue.remove(ticket):
            log.info("model %s: request left the queue (%d waiting)", self.model_id, len(self.queue))

    def retry_after(self) -> float:
        """Seconds until a slot is likely free: the runs ahead of it at the measured rate."""
        runs_ahead = self.running + math.ceil(len(self.queue) / self.max_batch)
        return max(0.05, runs_ahead * self.seconds_per_run / max(1, self.workers))

    def estimated_wait(self) -> float:
        """Seconds a request submitted now would likely wait for its run to start (0: a worker is free)."""
        if self.running < self.workers and not len(self.queue):
            return 0.0
        return self.retry_after()

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
