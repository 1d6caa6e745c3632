"""Admission after validation: moderation, rate limits and the budget charge; then the usage row."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import anyio.to_thread

from . import errors
from .access import Caller
from .ledger import Budget, BudgetExceededError, Charge, Entry, Ledger
from .metrics import Metrics
from .moderation import Moderator, blocked
from .profiles import Plan
from .ratelimit import Allowance, RateLimiter

NO_LIMITS = Allowance(None, None)


@dataclass(frozen=True)
class Admission:
    """An admitted request: its rate-limit headers, its charge, and when it was admitted."""

    headers: dict[str, str]
    charge: Charge
    started: float


class Gate:
    """Everything between a valid request and its model's queue, in the order OpenAI applies it."""

    def __init__(
        self,
        limiter: RateLimiter,
        ledger: Ledger,
        moderator: Moderator,
        metrics: Metrics,
        default: Allowance = NO_LIMITS,
    ) -> None:
        self.limiter = limiter
        self.ledger = ledger
        self.moderator = moderator
        self.metrics = metrics
        self.default = default

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
            await self._refused(entry, 400, "moderation", categories)
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
            if budget is None and not self.ledger.records:  # nothing to write: no thread hop
                charge = Charge(entry, None, None, None)
            else:
                charge = await anyio.to_thread.run_sync(self.ledger.charge, entry, budget)
        except BudgetExceededError:
            await self._refused(entry, 429, "insufficient_quota")
            raise
        except errors.RateLimitError:
            await self._refused(entry, 429, "rate_limited")
            raise
        return Admission(headers, charge, time.monotonic())

    async def settle(self, admission: Admission, status: int, images: int) -> None:
        """Close the usage row (and refund what was not delivered), even if the caller is cancelled."""
        if not admission.charge.open:
            return
        latency = int((time.monotonic() - admission.started) * 1000)
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(self.ledger.settle, admission.charge, status, latency, images)

    async def _refused(self, entry: Entry, status: int, reason: str, categories: Sequence[str] = ()) -> None:
        self.metrics.refusals.labels(entry.model, reason).inc()
        await anyio.to_thread.run_sync(lambda: self.ledger.record(entry, status, moderation=categories))
