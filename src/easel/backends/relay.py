"""The relay contract: a backend that forwards the request itself to another Images API (a gateway)."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncGenerator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..imaging import Upload
from ..jobs import Operation
from .base import AsyncBackend, Backend, BaseBackend

#: One stream event as the upstream sent it: its type and its data.
RelayedEvent = tuple[str, dict[str, Any]]


@dataclass(frozen=True)
class Forward:
    """A validated request, to send on: the client's fields (the model named as `model`) and its
    file parts with their bytes unchanged."""

    operation: Operation
    model: str
    fields: Mapping[str, Any]
    files: Mapping[str, Sequence[Upload]]
    form: bool
    stream: bool
    request_id: str


@dataclass
class Answer:
    """An upstream's answer: its JSON body, or its stream of events, and the headers to pass on."""

    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] | None = None
    #: The body's bytes as they came (passed on unchanged when nothing in it is replaced).
    raw: bytes | None = None
    events: AsyncGenerator[RelayedEvent, None] | None = None


class RelayBackend(BaseBackend):
    """A backend that renders nothing: it sends each request on to an upstream images server and
    passes its answer back as it came. It runs on the event loop (no CPU slot, no thread, no
    scheduler), at most `concurrency` requests in flight, the rest waiting up to `max_queue`.

    easel's keys, limits, budgets and moderation apply before `relay` is called, and the service
    hosts what the client asked to get as URLs.
    """

    #: The upstream returns only base64 for this family (gpt-image): URLs are easel's to host.
    base64_only: bool = True
    #: Download the upstream's URLs and serve them from easel's storage.
    rehost_urls: bool = False
    #: Fields easel does not know are sent on as they are, instead of refused.
    passthrough_unknown: bool = False

    @property
    def concurrency(self) -> int:
        return 64

    @property
    def available(self) -> bool:
        """False while repeated failures have it skipped as an overflow or fallback target."""
        return True

    def status(self) -> dict[str, Any]:
        """What /v1/models and /ready say of the upstream (its host, whether it is skipped)."""
        return {"available": self.available}

    @abstractmethod
    def check_room(self) -> None:
        """Raise the 503 a new request would get now (too many waiting), before it is charged."""

    @abstractmethod
    async def relay(self, forward: Forward) -> Answer:
        """Send `forward` on; an upstream error is raised as an APIError before anything is returned."""

    @abstractmethod
    async def fetch(self, url: str) -> bytes:
        """An image the upstream returned as a URL, downloaded (for `rehost_urls`)."""

    async def start(self) -> None:
        """Open connections; called once, on the event loop, before serving."""

    async def close(self) -> None:
        """Close connections; called once at shutdown."""


#: Any kind of backend, as the service holds them.
AnyBackend = Backend | AsyncBackend | RelayBackend
