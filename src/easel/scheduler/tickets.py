"""The ticket protocol: one request's place in a model's queue, and what comes back to it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import dataclass, field

from .. import errors
from ..jobs import Job, Rendered


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


def timed_out(ticket: Ticket) -> errors.APIError:
    return errors.RequestTimeoutError(ticket.limit or ticket.deadline - ticket.enqueued)
