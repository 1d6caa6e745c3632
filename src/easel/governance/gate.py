"""Admission after validation (moderation, rate limits, the budget charge) and settling the usage row."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType

import anyio
import anyio.to_thread

from .. import errors
from ..contract.rules import Plan
from ..metrics import Metrics
from .auth import Authenticator, Caller
from .ledger import Budget, Charge, Closing, Entry, Ledger, Refusal, StaleKeyError
from .moderation import Moderator
from .ratelimit import Allowance, RateLimiter

NO_LIMITS = Allowance(None, None)
log = logging.getLogger(__name__)


@dataclass(eq=False)
class Admission:
    """An admitted request: its rate-limit headers, its charge, and when it was admitted.

    Its context settles the request when it ends, however it ends: with `status` and `images`
    as the work left them, the status of an APIError that escapes, 499 when the client left
    (the work was cancelled), or 500 for anything else.
    """

    gate: Gate
    headers: dict[str, str]
    charge: Charge
    started: float
    #: Images delivered to the client so far.
    images: int = 0
    #: How the request ended, when no exception says otherwise.
    status: int = 200
    #: The served model that answered it (None: the one it named).
    served_by: str | None = None
    #: Its real (input, output) tokens, when an upstream reported them.
    tokens: tuple[int, int] | None = None

    def __enter__(self) -> Admission:
        return self

    @contextlib.contextmanager
    def if_refused(self) -> Iterator[None]:
        """Settle only if the block raises: for work handed on to what settles it later."""
        try:
            yield
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is None:
            status = self.status
        elif isinstance(exc, errors.APIError):
            status = exc.status
        elif isinstance(exc, asyncio.CancelledError | GeneratorExit):
            status = 499
        else:
            status = 500
        self.gate.settle(self, status, self.images)


class Gate:
    """Everything between a valid request and its model's queue, in the order OpenAI applies it.

    A request's charge and pending usage row are written before it is admitted. How it ended,
    and the rows of refused requests, are written in batches by `flush_forever`: the database
    sees one transaction per FLUSH_SECONDS for them, not one per request.
    """

    FLUSH_SECONDS = 0.1
    #: Closings (and refusals) kept for the next flush while the database cannot be written.
    MAX_PENDING = 100_000

    def __init__(
        self,
        auth: Authenticator,
        limiter: RateLimiter,
        ledger: Ledger,
        moderator: Moderator,
        metrics: Metrics,
        default: Allowance = NO_LIMITS,
    ) -> None:
        self.auth = auth
        self.limiter = limiter
        self.ledger = ledger
        self.moderator = moderator
        self.metrics = metrics
        self.default = default
        self._closings: list[Closing] = []
        self._refusals: list[Refusal] = []
        self._stop = asyncio.Event()

    async def admit(self, caller: Caller, plan: Plan, request_id: str) -> Admission:
        """Moderate the prompt, take the rate limits, charge the budget; the refusals are recorded."""
        job = plan.job
        render = job.render
        entry = _entry(caller, plan, request_id)
        categories = await self.moderator.check(getattr(job, "prompt", None), render.moderation)
        if categories:
            self._refused(entry, 400, "moderation", categories)
            raise errors.ModerationBlockedError(categories, "input")
        key = caller.key
        allowance = Allowance(
            rpm=key.rpm if key and key.rpm is not None else self.default.rpm,
            ipm=key.ipm if key and key.ipm is not None else self.default.ipm,
        )
        try:
            subject = caller.key_id or caller.owner
            headers = await self.limiter.admit(subject, render.model, allowance, render.n)
            budget = Budget.of(key)
            if budget is None and not self.ledger.records and caller.digest is None:
                charge = Charge(entry, None, None, None)  # nothing to write or confirm: no thread hop
            else:
                charge = await anyio.to_thread.run_sync(self.ledger.charge, entry, budget, caller.digest)
        except StaleKeyError:
            raise self.auth.stale(caller) from None
        except errors.InsufficientQuotaError:
            self._refused(entry, 429, "insufficient_quota")
            raise
        except errors.RateLimitError:
            self._refused(entry, 429, "rate_limited")
            raise
        return Admission(self, headers, charge, time.monotonic())

    def settle(self, admission: Admission, status: int, images: int) -> None:
        """Note how the request ended; its usage row is closed (and what it did not deliver
        refunded) by the next `flush`, so no request waits on that write."""
        if admission.charge.open:
            latency = int((time.monotonic() - admission.started) * 1000)
            closing = Closing(
                admission.charge, status, latency, images, admission.served_by, admission.tokens
            )
            self._closings.append(closing)

    async def flush(self) -> None:
        """Write the closings and refusals noted so far, in one transaction."""
        closings, refusals = self._closings, self._refusals
        if not (closings or refusals):
            return
        self._closings, self._refusals = [], []
        try:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(self.ledger.write, closings, refusals)
        except Exception:
            # The database is unreachable: keep them for the next flush, within reason.
            log.exception("could not write %d usage closings and refusals", len(closings) + len(refusals))
            self._closings[:0] = closings[-self.MAX_PENDING :]
            self._refusals[:0] = refusals[-self.MAX_PENDING :]

    async def flush_forever(self) -> None:
        """The background writer: flush every FLUSH_SECONDS until `stop_flushing`, then once more.

        It is stopped, never cancelled: a cancelled task's write in a worker thread would be cut
        loose, and what it had taken lost (a shield does not hold off `Task.cancel()`).
        """
        self._stop.clear()
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.FLUSH_SECONDS)
            await self.flush()

    def stop_flushing(self) -> None:
        """Ask `flush_forever` to write what is left and return."""
        self._stop.set()

    def refused(self, caller: Caller, plan: Plan, request_id: str, status: int) -> None:
        """Record a request refused before the gate (a full queue), in the next batch of rows."""
        self._refusals.append(Refusal(_entry(caller, plan, request_id), status))

    def _refused(self, entry: Entry, status: int, reason: str, categories: Sequence[str] = ()) -> None:
        self.metrics.refusals.labels(entry.model, reason).inc()
        self._refusals.append(Refusal(entry, status, tuple(categories)))


def _entry(caller: Caller, plan: Plan, request_id: str) -> Entry:
    """What one request asked for and who asked: its usage row's columns."""
    job, render = plan.job, plan.job.render
    return Entry(
        request_id=request_id,
        api_key_id=caller.key_id,
        org=caller.org,
        project=caller.project,
        model=render.model,
        operation=job.operation,
        n=render.n,
        size=render.size,
        quality=render.quality,
        pixels=render.n * render.width * render.height,
        input_tokens=plan.usage["input_tokens"],
        output_tokens=plan.usage["output_tokens"],
        safety_identifier=plan.delivery.safety_identifier,
    )
