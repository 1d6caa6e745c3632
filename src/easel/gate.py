"""Admission after validation: moderation, rate limits and the budget charge; then the usage row."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import anyio.to_thread

from . import errors
from .access import Authenticator, Caller
from .ledger import Budget, BudgetExceededError, Charge, Closing, Entry, Ledger, Refusal, StaleKeyError
from .metrics import Metrics
from .moderation import Moderator, blocked
from .profiles import Plan
from .ratelimit import Allowance, RateLimiter

NO_LIMITS = Allowance(None, None)
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Admission:
    """An admitted request: its rate-limit headers, its charge, and when it was admitted."""

    headers: dict[str, str]
    charge: Charge
    started: float


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

    async def admit(self, caller: Caller, plan: Plan, request_id: str) -> Admission:
        """Moderate the prompt, take the rate limits, charge the budget; the refusals are recorded."""
        job = plan.job
        render = job.render
        entry = Entry(
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
            input_tokens=int(plan.usage["input_tokens"]),
            output_tokens=int(plan.usage["output_tokens"]),
        )
        categories = await self.moderator.check(getattr(job, "prompt", None), render.moderation)
        if categories:
            self._refused(entry, 400, "moderation", categories)
            raise blocked(categories, "input")
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
        except BudgetExceededError:
            self._refused(entry, 429, "insufficient_quota")
            raise
        except errors.RateLimitError:
            self._refused(entry, 429, "rate_limited")
            raise
        return Admission(headers, charge, time.monotonic())

    def settle(self, admission: Admission, status: int, images: int) -> None:
        """Note how the request ended; its usage row is closed (and what it did not deliver
        refunded) by the next `flush`, so no request waits on that write."""
        if admission.charge.open:
            latency = int((time.monotonic() - admission.started) * 1000)
            self._closings.append(Closing(admission.charge, status, latency, images))

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
        """The background writer: flush every FLUSH_SECONDS."""
        while True:
            await anyio.sleep(self.FLUSH_SECONDS)
            await self.flush()

    def _refused(self, entry: Entry, status: int, reason: str, categories: Sequence[str] = ()) -> None:
        self.metrics.refusals.labels(entry.model, reason).inc()
        self._refusals.append(Refusal(entry, status, tuple(categories)))
