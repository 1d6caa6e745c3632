"""RemoteQueue: in the ingress, a model's queue that is its Ray Serve replicas; Order, what crosses."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

from .. import errors
from ..jobs import Job, Rendered
from ..metrics import Metrics
from ..scheduler import Finished, Partial, Ticket, receive

if TYPE_CHECKING:
    from ray.serve.handle import DeploymentHandle, DeploymentResponse, DeploymentResponseGenerator

    #: A call to a replica: a whole answer, or a stream of events.
    Call = DeploymentResponse[Any] | DeploymentResponseGenerator[Any]

log = logging.getLogger("easel.cluster")

#: A replica's first answer to an order: its scheduler took the ticket (else it sends the refusal).
ACCEPTED = "accepted"


@dataclass(frozen=True)
class Order:
    """A ticket as it travels to a model replica: the job, how to encode it, for whom, how long."""

    job: Job
    encode: Callable[[Rendered], bytes]
    owner: str
    #: Seconds it has left to wait and render, and the configured limit (the 504 names it).
    seconds: float
    limit: float
    request_id: str


class RemoteQueue:
    """A model's queue in the ingress when its replicas run elsewhere: each ticket is one call to a
    replica (streamed, for a stream), whose own Scheduler batches, cancels and encodes.

    The replica's events are posted to the ticket as a local run's are. A ticket abandoned here
    (its client left, its time ran out) cancels its call, and so its render at the next step.
    Room is counted in this ingress: `capacity` tickets in flight at once, as many as the
    replicas and Ray's queue hold; past it, or past Ray's queue, 503 server_overloaded.
    """

    def __init__(self, model_id: str, handle: DeploymentHandle[Any], capacity: int, metrics: Metrics) -> None:
        self.model_id = model_id
        self.handle = handle
        self.streaming = handle.options(stream=True)
        self.capacity = capacity
        self.metrics = metrics
        self.calls: dict[Ticket, asyncio.Task[None]] = {}
        #: Tickets sent, not yet accepted by a replica (in Ray's queue, or on their way).
        self.sending = 0
        self.draining = False
        metrics.at_replicas.labels(model_id).set_function(lambda: len(self))

    def __len__(self) -> int:
        """Tickets at the replicas: sent, accepted, not yet finished."""
        return len(self.calls) + self.sending

    def start(self) -> None:
        self.draining = False

    def check_room(self) -> None:
        if self.draining:
            raise self._overloaded("The server is shutting down.", "shutting_down")
        if len(self) >= self.capacity:
            raise self._overloaded(
                f"The server is overloaded: {len(self)} requests are in progress or waiting.",
                "overloaded",
            )

    def estimated_wait(self) -> float:
        """Not measured here: the replicas' queues are theirs (overflow_after_seconds is not used)."""
        return 0.0

    async def enter(self, ticket: Ticket) -> None:
        """A stream's call is accepted by a replica before this returns (a refusal is then still
        an HTTP error); a whole answer is one call, whose refusal comes with its results."""
        self.check_room()
        order = Order(
            ticket.job,
            ticket.encode,
            ticket.owner,
            max(0.0, ticket.deadline - time.monotonic()),
            ticket.limit,
            ticket.request_id,
        )
        if not ticket.streamed:
            call = cast("DeploymentResponse[Any]", self.handle.answer.remote(order))
            self.calls[ticket] = asyncio.create_task(self._pump(ticket, call, _listed(call)))
            return
        stream = cast("DeploymentResponseGenerator[Any]", self.streaming.run.remote(order))
        self.sending += 1
        try:
            with self._mapped(ticket):
                first = await anext(stream)
        except asyncio.CancelledError:  # the client left while it waited for a replica
            _cancel(stream)
            raise
        finally:
            self.sending -= 1
        if isinstance(first, errors.APIError):
            raise first
        self.calls[ticket] = asyncio.create_task(self._pump(ticket, stream, stream))

    def results(self, ticket: Ticket) -> AsyncGenerator[Partial | Finished, None]:
        return receive(ticket, self.abandon)

    def abandon(self, ticket: Ticket) -> None:
        ticket.abandoned = True
        call = self.calls.pop(ticket, None)
        if call is not None:
            call.cancel()

    def drain(self) -> None:
        """Refuse new work; what is in flight goes on (the replicas' queues answer for themselves)."""
        self.draining = True

    def give_up(self, message: str) -> int:
        given_up = list(self.calls)
        for ticket in given_up:
            ticket.post(self._overloaded(message, "shutting_down"))
            self.abandon(ticket)
        return len(given_up)

    async def stop(self) -> None:
        self.draining = True
        calls = list(self.calls.values())
        for call in calls:
            call.cancel()
        for call in calls:
            with contextlib.suppress(asyncio.CancelledError):
                await call

    async def _pump(self, ticket: Ticket, call: Call, items: AsyncIterator[Any]) -> None:
        """A call's items (a stream's events, or a whole answer's), posted to the ticket; a
        failure (the replica's own, or the call's) ends it."""
        try:
            with self._mapped(ticket):
                async for item in items:
                    ticket.post(item)
                    if isinstance(item, errors.APIError):
                        return
            ticket.post(None)
        except asyncio.CancelledError:
            _cancel(call)  # the replica's run is cancelled: its render stops at the next step
            raise
        except errors.APIError as exc:
            ticket.post(exc)
        finally:
            self.calls.pop(ticket, None)

    @contextlib.contextmanager
    def _mapped(self, ticket: Ticket) -> Iterator[None]:
        """Ray's failures as easel's errors: never Ray's own text, paths or addresses."""
        from ray import exceptions as ray_errors
        from ray.serve import exceptions as serve_errors

        try:
            yield
        except errors.APIError:
            raise
        except serve_errors.BackPressureError as exc:
            raise self._overloaded(
                f"The server is overloaded: every replica of {self.model_id} is busy and its queue is full.",
                "overloaded",
                exc.retry_after_s or 1.0,
            ) from None
        except ray_errors.RayTaskError as exc:
            if isinstance(exc.cause, errors.APIError):
                raise exc.cause from None
            log.error("model %s: its replica failed (request id %s): %s", self.model_id,
                      ticket.request_id, type(exc.cause).__name__)  # fmt: skip
            raise errors.internal(ticket.request_id) from None
        except (
            ray_errors.RayActorError,
            ray_errors.ActorUnavailableError,
            serve_errors.ReplicaUnavailableError,
            serve_errors.DeploymentUnavailableError,
        ) as exc:
            log.warning("model %s: a replica stopped while it held request %s (%s)", self.model_id,
                        ticket.request_id, type(exc).__name__)  # fmt: skip
            raise self._overloaded(
                f"The replica of {self.model_id} that held this request stopped; another is starting. "
                "Retry it.",
                "replica_lost",
            ) from None
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("model %s: the call to its replica failed (request id %s): %s", self.model_id,
                      ticket.request_id, type(exc).__name__)  # fmt: skip
            raise errors.internal(ticket.request_id) from None

    def _overloaded(self, message: str, reason: str, retry: float = 1.0) -> errors.ServiceUnavailableError:
        self.metrics.refusals.labels(self.model_id, reason).inc()
        return errors.overloaded(message, retry)


async def _listed(call: DeploymentResponse[Any]) -> AsyncIterator[Any]:
    """A whole answer's items, once it has come."""
    for item in await call:
        yield item


def _cancel(call: Call) -> None:
    """Cancel a call to a replica; what it had already failed with (raised by `cancel`) is moot."""
    with contextlib.suppress(Exception):
        call.cancel()  # type: ignore[no-untyped-call]
