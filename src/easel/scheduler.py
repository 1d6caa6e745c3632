"""Scheduler: a bounded queue per model, served round-robin across keys, with cancellation and drain."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import anyio
import anyio.to_thread
from PIL import Image

from . import errors
from .jobs import Job, Rendered

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
    encode: Callable[[Image.Image], bytes]
    deadline: float
    events: asyncio.Queue[Event] = field(default_factory=asyncio.Queue)
    loop: asyncio.AbstractEventLoop = field(default_factory=asyncio.get_running_loop)
    enqueued: float = field(default_factory=time.monotonic)
    started: float | None = None
    #: Set when the requester left or ran out of time: the backend stops at its next step.
    abandoned: bool = False

    def stop(self) -> bool:
        return self.abandoned or time.monotonic() > self.deadline

    def post(self, event: Event) -> None:
        """Hand an event to the requester; safe from any thread."""
        self.loop.call_soon_threadsafe(self.events.put_nowait, event)


class FairQueue:
    """Waiting tickets in one lane per owner; `pop` takes the next owner's oldest, round-robin."""

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
        if not self.lanes:
            return None
        owner, lane = next(iter(self.lanes.items()))
        ticket = lane.popleft()
        del self.lanes[owner]
        if lane:  # the owner goes to the back of the round
            self.lanes[owner] = lane
        self.size -= 1
        return ticket

    def remove(self, ticket: Ticket) -> bool:
        lane = self.lanes.get(ticket.owner)
        if lane is None or ticket not in lane:
            return False
        lane.remove(ticket)
        if not lane:
            del self.lanes[ticket.owner]
        self.size -= 1
        return True

    def drain(self) -> list[Ticket]:
        tickets = [t for lane in self.lanes.values() for t in lane]
        self.lanes.clear()
        self.size = 0
        return tickets


class Scheduler:
    """Runs one model's tickets on `workers` worker tasks, each render in a CPU worker thread.

    Past `depth` waiting requests, or once draining, a submission is refused with 503
    `server_overloaded` and a retry time estimated from the measured service rate.
    """

    def __init__(
        self,
        model_id: str,
        run: Callable[[Ticket], None],
        depth: int,
        workers: int,
        cpu: anyio.CapacityLimiter,
    ) -> None:
        self.model_id = model_id
        self.run = run
        self.queue = FairQueue(depth)
        self.workers = workers
        self.cpu = cpu
        self.running = 0
        self.draining = False
        #: Smoothed seconds per ticket, from what has run (a guess of 1 s before anything has).
        self.seconds_per_ticket = 1.0
        self._ready: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[None]] = []

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
            ticket.events.put_nowait(self._overloaded("The server is shutting down."))

    async def stop(self) -> None:
        self.drain()
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- submitting and leaving -----------------------------------------------------------

    def submit(self, ticket: Ticket) -> None:
        if self.draining:
            raise self._overloaded("The server is shutting down.")
        if not self.queue.put(ticket):
            raise self._overloaded(f"The server is overloaded: {len(self.queue)} requests are waiting.")
        if self._loop is not asyncio.get_running_loop():
            # An app driven without its lifespan, as some test clients do (a loop per request).
            self.start()
        assert self._ready is not None
        self._ready.set()

    def abandon(self, ticket: Ticket) -> None:
        """The requester is gone: free its queue slot now, or stop its render at the next step."""
        ticket.abandoned = True
        if self.queue.remove(ticket):
            log.info("model %s: request left the queue (%d waiting)", self.model_id, len(self.queue))

    def retry_after(self) -> float:
        """Seconds until a slot is likely free: the work ahead of it at the measured rate."""
        ahead = len(self.queue) + self.running
        return max(0.05, ahead * self.seconds_per_ticket / max(1, self.workers))

    def _overloaded(self, message: str) -> errors.ServiceUnavailableError:
        wait = self.retry_after()
        headers = {"retry-after": str(math.ceil(wait)), "retry-after-ms": str(math.ceil(wait * 1000))}
        return errors.ServiceUnavailableError(message, code="server_overloaded", headers=headers)

    # -- the workers ----------------------------------------------------------------------

    async def _worker(self) -> None:
        assert self._ready is not None
        while True:
            ticket = self.queue.pop()
            if ticket is None:
                self._ready.clear()
                await self._ready.wait()
                continue
            if ticket.stop():
                ticket.events.put_nowait(timed_out(ticket))
                continue
            ticket.started = time.monotonic()
            self.running += 1
            try:
                await anyio.to_thread.run_sync(self.run, ticket, limiter=self.cpu)
            finally:
                self.running -= 1
            took = time.monotonic() - ticket.started
            self.seconds_per_ticket = 0.7 * self.seconds_per_ticket + 0.3 * took
            log.info(
                "model %s: ran %s n=%d in %.0f ms after %.0f ms queued; %d waiting",
                self.model_id,
                ticket.job.operation,
                ticket.job.render.n,
                took * 1000,
                (ticket.started - ticket.enqueued) * 1000,
                len(self.queue),
            )

    def stats(self) -> dict[str, Any]:
        return {"waiting": len(self.queue), "running": self.running, "draining": self.draining}


def timed_out(ticket: Ticket) -> errors.APIError:
    return errors.RequestTimeoutError(ticket.deadline - ticket.enqueued)
