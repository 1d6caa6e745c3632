"""OpenAIBackend: each request relayed to its upstream on one pooled client, `max_in_flight` at once."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlsplit

import anyio

from ... import errors
from ...contract.profiles import Surface
from ...contract.references import RemotePolicy, fetch_image
from ...jobs import Capabilities
from ..base import BackendOptions
from ..relay import Answer, Forward, RelayBackend, RelayedEvent
from .options import OpenAIOptions
from .upstream import Upstream

if TYPE_CHECKING:
    from ...settings import ModelSpec

#: Everything OpenAI's API has; what the upstream itself refuses comes back as its own 400.
CAPABILITIES = Capabilities(
    operations=frozenset({"generations", "edits", "variations"}),
    transparent_background=True,
    extensions=frozenset(),
    max_input_images=16,
    previews=True,
    output_formats=frozenset({"png", "jpeg", "webp", "gif", "svg"}),
    complexity=True,
    markup=True,
)


class OpenAIBackend(RelayBackend):
    """A served model whose images an upstream makes: easel's keys, limits, budgets and hosted
    URLs in front, the upstream's answer passed on as it came."""

    Options: ClassVar[type[BackendOptions]] = OpenAIOptions

    def __init__(self, spec: ModelSpec, options: BackendOptions | None = None) -> None:
        super().__init__(spec, options)
        o = self.options
        assert isinstance(o, OpenAIOptions)
        self.opts = o
        family = o.family or ("gpt-image" if Surface.of(spec).gpt else "dall-e")
        self.base64_only = family == "gpt-image"
        self.rehost_urls = o.rehost_urls
        self.passthrough_unknown = o.passthrough_unknown
        self.upstream: Upstream | None = None
        self._key = o.api_key(spec.id)  # read when the server is built: a missing key stops start-up
        self.slots = anyio.CapacityLimiter(o.max_in_flight)

    @property
    def capabilities(self) -> Capabilities:
        return CAPABILITIES

    @property
    def concurrency(self) -> int:
        return self.opts.max_in_flight

    @property
    def host(self) -> str:
        return urlsplit(self.opts.base_url).netloc

    @property
    def available(self) -> bool:
        return self.upstream is None or self.upstream.circuit.closed

    def status(self) -> dict[str, Any]:
        circuit = self.upstream.circuit if self.upstream is not None else None
        return {
            "host": self.host,
            "available": self.available,
            "consecutive_failures": circuit.failures if circuit else 0,
            "skipped_for_seconds": round(circuit.skipped_for(), 1) if circuit else 0.0,
        }

    async def start(self) -> None:
        self.upstream = Upstream(self.spec.id, self.opts, self._key)

    async def close(self) -> None:
        if self.upstream is not None:
            await self.upstream.close()

    def check_room(self) -> None:
        slots = self.slots.statistics()
        waiting = slots.tasks_waiting
        if slots.borrowed_tokens >= slots.total_tokens and waiting >= self.spec.max_queue:
            raise errors.overloaded(
                f"The server is overloaded: {waiting} requests are waiting for the upstream at {self.host}.",
                1.0,
            )

    async def relay(self, forward: Forward) -> Answer:
        upstream = self.upstream
        assert upstream is not None, "relay before start"
        fields = {**forward.fields, "model": self.upstream_model(forward.model)}
        slot = object()  # the borrower: a stream gives its slot back from another task
        await self.slots.acquire_on_behalf_of(slot)
        try:
            reply = await upstream.send(forward, fields)
            headers = upstream.passed_on(reply.headers)
            if forward.stream and reply.streamed:  # the slot is held until the stream ends
                return Answer(headers=headers, events=self._holding(upstream.events(reply), slot))
            raw, body = await upstream.body(reply)
        except BaseException:
            self.slots.release_on_behalf_of(slot)
            raise
        self.slots.release_on_behalf_of(slot)
        return Answer(headers=headers, body=body, raw=raw)

    async def _holding(
        self, events: AsyncGenerator[RelayedEvent, None], slot: object
    ) -> AsyncGenerator[RelayedEvent, None]:
        """`events`, then this request's in-flight slot given back, however the stream ends."""
        try:
            async with contextlib.aclosing(events):
                async for event in events:
                    yield event
        finally:
            self.slots.release_on_behalf_of(slot)

    def upstream_model(self, named: str) -> str:
        """The upstream's name for a request: the option, else the id the client named when this
        model answers it (an alias OpenAI knows), else this model's own id."""
        if self.opts.model is not None:
            return self.opts.model
        return named if named in self.spec.ids else self.spec.id

    async def fetch(self, url: str) -> bytes:
        upstream = self.upstream
        assert upstream is not None
        try:
            host = urlsplit(url).netloc
        except ValueError:
            host = ""
        if host == upstream.host:  # the operator's upstream, trusted as configured
            return await upstream.download(url)
        policy = RemotePolicy(
            enabled=True, timeout=self.opts.timeout_seconds, max_bytes=self.opts.max_response_bytes
        )
        try:
            return (await fetch_image(url, "url", policy)).data
        except errors.BadRequestError as exc:
            raise errors.BadGatewayError(
                f"The upstream images server at {upstream.host} returned an image URL easel could not fetch: "
                f"{exc.message}",
                code="upstream_url_failed",
            ) from None
