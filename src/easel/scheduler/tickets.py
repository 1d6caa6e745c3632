"""The ticket protocol: one request's place in a model's queue, and what comes back to it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from .. import errors
from ..jobs import Job, Rendered


@dataclass(frozen=True)
class Partial:
    """A preview of image `index` of a ticket, encoded."""

    index: int
    partial: int
    data: bytes


@dataclass(frozen=True)
class Finished:
    """A finished image, encoded, with what the response says about it (no pixels: it may cross
    processes)."""

    data: bytes
    seed: int | None = None
    revised_prompt: str | None = None
    svg: str | None = None

    @classmethod
    def of(cls, rendered: Rendered, data: bytes) -> Finished:
        return cls(data, rendered.seed, rendered.revised_prompt, rendered.svg)


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
    #: The request's id, for the logs of a process that runs it elsewhere (a Ray replica).
    request_id: str = ""
    #: Its events are sent on as they come (a stream); else only the whole answer is.
    streamed: bool = False

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


def timed_out(ticket: Ticket) -> errors.APIError:
    return errors.RequestTimeoutError(ticket.limit or ticket.deadline - ticket.enqueued)


async def receive(
    ticket: Ticket, abandon: Callable[[Ticket], None]
) -> AsyncGenerator[Partial | Finished, None]:
    """A ticket's partials and images as they are posted, until its last image (None) or a
    failure, which is raised; past its deadline, a 504. If the consumer stops listening first,
    `abandon(ticket)`."""
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
            abandon(ticket)


class ModelQueue(Protocol):
    """Where a model's tickets wait and run: a `Scheduler` in this process, or the model's Ray
    replicas (`cluster.remote`). The service only ever talks to this."""

    def start(self) -> None: ...

    def check_room(self) -> None:
        """The 503 a submission would get now (raised), before anything is charged."""

    def estimated_wait(self) -> float:
        """Seconds a request submitted now would likely wait for its run to start."""

    async def enter(self, ticket: Ticket) -> None:
        """Queue the ticket, or raise the APIError that refuses it (nothing has started)."""

    def results(self, ticket: Ticket) -> AsyncGenerator[Partial | Finished, None]:
        """An entered ticket's partials and images, as `receive` gives them."""

    def drain(self) -> None:
        """Refuse new work and answer what waits with a 503; running work goes on."""

    def give_up(self, message: str) -> int:
        """Answer every started request with a 503 and stop it; how many there were."""

    async def stop(self) -> None: ...
