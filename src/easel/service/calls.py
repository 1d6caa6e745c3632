"""What the service passes around: served models and routes, a request as asked and as seen, streams."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..backends import AnyBackend, RelayBackend
from ..contract.listing import model_entry
from ..contract.responses import CompletedEvent, ModelEntry, PartialImageEvent, StreamError
from ..contract.rules import ModelRules
from ..governance.auth import Caller
from ..imaging import Upload
from ..jobs import Operation
from ..memory import Hold
from ..settings import ModelSpec

T = TypeVar("T")

#: A stream event: its type and its data (an upstream's events are passed on as they came).
Event = tuple[str, PartialImageEvent | CompletedEvent | StreamError | dict[str, Any]]


@dataclass(frozen=True)
class ServedModel:
    """A model as served: one backend instance and one queue, answering one or more ids."""

    spec: ModelSpec
    backend: AnyBackend

    @property
    def id(self) -> str:
        return self.spec.id

    @property
    def relay(self) -> RelayBackend | None:
        """Its backend when that sends requests on to an upstream."""
        return self.backend if isinstance(self.backend, RelayBackend) else None

    @property
    def available(self) -> bool:
        """Whether it may take overflow and fallback now (an upstream failing repeatedly may not)."""
        return self.relay is None or self.relay.available


@dataclass(frozen=True)
class Route:
    """One id a client may name: the rules it follows, and the served model that answers it."""

    rules: ModelRules
    model: ServedModel

    @property
    def id(self) -> str:
        return self.rules.id

    def describe(self, created: int) -> ModelEntry:
        """The /v1/models entry of this id (with its upstream's state, for a relay)."""
        entry = model_entry(self.rules, self.model.id, created)
        relay, spec = self.model.relay, self.model.spec
        if relay is not None:
            entry["upstream"] = relay.status()
        entry["overflow"], entry["fallback"] = spec.overflow, spec.fallback
        return entry


@dataclass(frozen=True)
class Asked:
    """A request as the client sent it: what a relay sends on, and what a reroute plans again."""

    op: Operation
    fields: Mapping[str, Any]
    files: Mapping[str, Sequence[Upload]]
    form: bool


@dataclass(eq=False)
class Call:
    """One request as the service sees it: who asks and how to reach them, and what the HTTP
    layer reads back for its logs, metrics and headers."""

    caller: Caller
    request_id: str
    #: Where the client reached easel, as a trusted proxy forwarded it (None: the configured base).
    origin: str | None = None
    #: Returns once the client has gone (None: never asked).
    gone: Callable[[], Awaitable[None]] | None = None
    #: The served model it named, once looked up.
    model: str | None = None
    #: Its prompt, once validated (logged only with `log_prompts`).
    prompt: str | None = None
    #: Headers every answer to it carries, errors included: its rate limits, once admitted.
    headers: dict[str, str] = field(default_factory=dict)
    #: Its share of the server's buffered bytes (None: not bounded), grown as images decode.
    hold: Hold | None = None


@dataclass(frozen=True)
class Streamed:
    """A queued stream: its events, each image's partials then its completed event; a failure
    after the first event is an `error` event. It settles the request when it ends."""

    events: AsyncGenerator[Event, None]


async def until_gone(work: Awaitable[T], gone: Callable[[], Awaitable[None]] | None) -> T | None:
    """`work`'s result, or None once the client has gone: `work` is then cancelled, which frees
    its queue slot or stops its render at the next step."""
    if gone is None:
        return await work
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(gone())
    try:
        await asyncio.wait((task, watcher), return_when=asyncio.FIRST_COMPLETED)
    finally:
        watcher.cancel()
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    return None if task.cancelled() else task.result()
