"""Per-key, per-model limits in requests and images per minute through `limits` (memory or Redis)."""

from __future__ import annotations

import inspect
import math
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Literal, TypeVar

from .. import errors

T = TypeVar("T")
Kind = Literal["requests", "images"]
UNIT = {"requests": ("requests", "RPM"), "images": ("images", "IPM")}


@dataclass(frozen=True)
class Allowance:
    """A caller's limits on one model (None: unlimited)."""

    rpm: int | None
    ipm: int | None


class RateLimiter:
    """A moving window per (kind, key, model), so a retry after `retry-after` always gets in.

    With `quantum="second"` a per-minute limit is enforced as a sixtieth of it per second
    (at least 1), as OpenAI says it may do: bursts are smoothed and waits stay short.
    """

    def __init__(self, url: str = "memory://", quantum: Literal["minute", "second"] = "minute") -> None:
        from limits import aio, strategies
        from limits.storage import storage_from_string

        options: dict[str, str | bool] = {"wrap_exceptions": True}
        self.url = url
        self.quantum = quantum
        # In process, the synchronous storage is called on the event loop: each call takes
        # microseconds, while the asynchronous one hops to a thread to expire old entries after
        # every hit, which cost as much as the rest of the request's governance.
        self.strategy: strategies.MovingWindowRateLimiter | aio.strategies.MovingWindowRateLimiter
        if url.startswith("memory://"):
            self.strategy = strategies.MovingWindowRateLimiter(storage_from_string(url, **options))
            return
        if url.split(":", 1)[0] in ("redis", "rediss", "redis+unix"):
            options["implementation"] = "redispy"
        self.strategy = aio.strategies.MovingWindowRateLimiter(storage_from_string(f"async+{url}", **options))

    async def admit(self, subject: str, model: str, allowance: Allowance, images: int) -> dict[str, str]:
        """Take one request and `images` images; the `x-ratelimit-*` headers, or a 429.

        Every limit that applies is reported, on the 429 too: after a refused kind, the others
        are read without being taken, so a refusal costs the caller nothing of them.
        """
        headers: dict[str, str] = {}
        refused: errors.RateLimitError | None = None
        for kind, per_minute, cost in (("requests", allowance.rpm, 1), ("images", allowance.ipm, images)):
            if per_minute is None:
                continue
            taken, found = await self._take(kind, subject, model, per_minute, cost, take=refused is None)  # type: ignore[arg-type]
            headers.update(taken)
            refused = refused or found
        if refused is not None:
            refused.headers = {**headers, **refused.headers}
            raise refused
        return headers

    async def _take(
        self, kind: Kind, subject: str, model: str, per_minute: int, cost: int, *, take: bool
    ) -> tuple[dict[str, str], errors.RateLimitError | None]:
        """This kind's headers, and its 429 if the request does not fit (only read, not taken,
        without `take`)."""
        from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
        from limits.errors import StorageError

        item: RateLimitItem = (
            RateLimitItemPerSecond(max(1, per_minute // 60))
            if self.quantum == "second"
            else RateLimitItemPerMinute(per_minute)
        )
        try:
            allowed = (
                await _settled(self.strategy.hit(item, kind, subject, model, cost=cost)) if take else True
            )
            stats = await _settled(self.strategy.get_window_stats(item, kind, subject, model))
        except StorageError as exc:
            raise errors.unavailable("The rate limiter's storage could not be reached") from exc
        wait = max(0.0, stats.reset_time - time.time())
        headers = {
            f"x-ratelimit-limit-{kind}": str(item.amount),
            f"x-ratelimit-remaining-{kind}": str(stats.remaining),
            f"x-ratelimit-reset-{kind}": duration(wait),
        }
        if allowed:
            return headers, None
        word, short = UNIT[kind]
        per = "min" if self.quantum == "minute" else "min, enforced per second"
        used = item.amount - stats.remaining
        return headers, errors.RateLimitError(
            f"Rate limit reached for {model} on {word} per {per} ({short}): Limit {item.amount}, "
            f"Used {used}, Requested {cost}. Please try again in {duration(wait)}.",
            code="rate_limit_exceeded",
            # A few milliseconds of margin so that a client retrying on the dot finds the slot free.
            headers=errors.retry_headers(wait + 0.005),
        )


async def _settled(value: T | Awaitable[T]) -> T:
    """The value of a call to either kind of `limits` strategy."""
    return await value if inspect.isawaitable(value) else value


def duration(seconds: float) -> str:
    """OpenAI's reset format: `20ms`, `1s`, `17.28s`, `6m0s`."""
    if seconds < 1:
        return f"{math.ceil(seconds * 1000)}ms"
    if seconds < 60:
        return f"{round(seconds, 2):g}s"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}m{rest}s"
