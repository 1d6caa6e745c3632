"""ModelReplica: one model's backend and Scheduler in a Ray Serve replica, streaming each order's events."""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import AsyncGenerator
from typing import Any

import anyio

from .. import errors, logs
from ..backends import RelayBackend, build, lifecycle
from ..metrics import Metrics
from ..scheduler import Finished, Partial, Scheduler, Ticket
from ..settings import ModelSpec
from .remote import ACCEPTED, Order

log = logging.getLogger("easel.cluster")

#: What a replica streams back for an order: ACCEPTED, then its events; or an APIError, last.
Item = str | Partial | Finished | errors.APIError


class ModelReplica:
    """A model as one Serve replica runs it: the backend loaded once, and easel's own Scheduler,
    so that batching across the replica's requests, cancellation and encoding happen here.

    Errors are sent as items, not raised: Ray would log a traceback for every refusal, and wrap it.
    """

    async def __init__(self, spec: dict[str, Any], log_level: str, log_format: str) -> None:  # type: ignore[misc]
        # Serve awaits an async constructor: the backend loads before the replica takes requests.
        logs.configure(log_level, log_format)
        self.spec = ModelSpec.model_validate(spec)
        backend = build(self.spec)
        if isinstance(backend, RelayBackend):  # the application never deploys one
            raise errors.BackendConfigError(f"model {self.spec.id!r}: a relay runs in the ingress")
        self.backend = backend
        self.metrics = Metrics()
        workers = self.spec.ray.workers
        await lifecycle(backend, starting=True)
        self.scheduler = Scheduler.serving(
            self.spec, backend, self.metrics, anyio.CapacityLimiter(workers), workers
        )
        self.scheduler.start()
        log.info("model %s: replica ready", self.spec.id)

    async def run(self, order: Order) -> AsyncGenerator[Item, None]:
        """An order's events: ACCEPTED once queued, then its partials and images; a refusal or a
        failure as the APIError the client gets. Cancelled (the client left), its render stops."""
        ticket = Ticket(
            job=order.job,
            owner=order.owner,
            encode=order.encode,
            deadline=time.monotonic() + order.seconds,
            key=self.backend.batch_key(order.job),
            limit=order.limit,
            request_id=order.request_id,
        )
        try:
            self.scheduler.submit(ticket)
        except errors.APIError as refused:
            yield refused
            return
        yield ACCEPTED
        try:
            async with contextlib.aclosing(self.scheduler.results(ticket)) as events:
                async for event in events:
                    yield event
        except errors.APIError as exc:
            yield exc
        except Exception:
            log.exception("model %s: the run failed (request id %s)", self.spec.id, order.request_id)
            yield errors.internal(order.request_id)

    async def answer(self, order: Order) -> list[Item]:
        """An order's whole answer in one reply (cheaper than a stream when nobody streams): its
        images, or the APIError that refused or failed it, last."""
        return [item async for item in self.run(order) if item != ACCEPTED]

    def state(self) -> dict[str, int]:
        """What this replica is doing: runs in progress and requests waiting."""
        return {"running": self.scheduler.running, "waiting": len(self.scheduler.queue)}

    async def __del__(self) -> None:
        # Serve calls this when it stops the replica: finish the queue, then release the weights.
        await self.scheduler.stop()
        await lifecycle(self.backend, starting=False)
