"""A run's side of the ticket protocol: render a batch, check and encode each image, post it back."""

from __future__ import annotations

import time
from collections.abc import Sequence

import anyio
import anyio.to_thread
from PIL import Image

from .. import errors
from ..backends.base import AsyncBackend, Backend, Part
from ..jobs import Rendered
from ..metrics import Metrics
from .tickets import Finished, Partial, Runner, Slice, timed_out


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
        ticket.post(Finished.of(rendered, data))
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
