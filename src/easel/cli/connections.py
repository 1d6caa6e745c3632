"""uvicorn's HTTP protocol with a bounded request head and read deadlines, against huge or slow clients."""

from __future__ import annotations

import asyncio
import logging
from asyncio import TimerHandle
from dataclasses import dataclass
from http import HTTPStatus

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .. import errors

log = logging.getLogger("easel.connections")


@dataclass(frozen=True)
class ReadLimits:
    """What a client must manage to be served (`max_header_bytes`, `*_timeout_seconds`)."""

    #: The request line and headers, in bytes.
    max_header_bytes: int
    #: Seconds from a request's first byte (a connection's opening, for its first) to its last header.
    header_timeout: float
    #: Seconds the body may go without a byte while easel is reading it.
    body_timeout: float


def guarded_protocol(limits: ReadLimits) -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, which bounds neither, with `limits` kept on every connection.

    A head past `max_header_bytes` is answered 431 and one that takes longer than
    `header_timeout` 408, in OpenAI's envelope, and the connection is closed; a body that stalls
    for `body_timeout` while easel waits on it is cut (the request ends as the client's 499)."""

    class GuardedProtocol(HttpToolsProtocol):
        _head_bytes = 0
        _heads = 0  # heads completed on this connection
        _in_head = True
        _in_body = False
        _timer: TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm(limits.header_timeout, self._head_overdue)

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

        def data_received(self, data: bytes) -> None:
            if self._in_body:
                self._arm(limits.body_timeout, self._body_stalled)
            if not self._in_head:
                super().data_received(data)
                return
            room = limits.max_header_bytes - self._head_bytes
            if len(data) <= room:
                self._head_bytes += len(data)
                super().data_received(data)
                return
            # Feed what the head may take; unless its headers ended there, it is too long.
            heads = self._heads
            super().data_received(data[:room])
            if self.transport.is_closing():
                return
            if self._heads == heads:
                self._refuse(431, f"The request's line and headers pass {limits.max_header_bytes} bytes.")
                return
            super().data_received(data[room:])

        def on_message_begin(self) -> None:
            super().on_message_begin()
            if self._timer is None:  # a later request on a kept-alive connection
                self._arm(limits.header_timeout, self._head_overdue)

        def on_headers_complete(self) -> None:
            self._heads += 1
            self._in_head, self._in_body = False, True
            self._arm(limits.body_timeout, self._body_stalled)
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            self._disarm()
            self._in_head, self._in_body, self._head_bytes = True, False, 0
            super().on_message_complete()

        def _arm(self, seconds: float, then: object) -> None:
            self._disarm()
            self._timer = self.loop.call_later(seconds, then)  # type: ignore[arg-type]

        def _disarm(self) -> None:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

        def _head_overdue(self) -> None:
            self._timer = None
            if self.transport.is_closing():
                return
            if self.cycle is not None and not self.cycle.response_complete:
                self._arm(limits.header_timeout, self._head_overdue)  # answer the earlier one first
                return
            took = f"{limits.header_timeout:g} seconds"
            self._refuse(408, f"The request's line and headers did not arrive within {took}.")

        def _body_stalled(self) -> None:
            self._timer = None
            if self.transport.is_closing() or not self._in_body:
                return
            if self.flow.read_paused:  # easel is not reading yet: the client is not to blame
                self._arm(limits.body_timeout, self._body_stalled)
                return
            quiet = limits.body_timeout
            log.info("closed the connection of %s: its body sent nothing for %g s", self._peer(), quiet)
            self.transport.close()

        def _refuse(self, status: int, message: str) -> None:
            """Answer before any request exists (so outside the app), then hang up."""
            self._disarm()
            log.info("refused %s with %d: %s", self._peer(), status, message)
            body = orjson.dumps(errors.for_status(status, message).envelope())
            head = (
                f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
                f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
            )
            self.transport.write(head.encode("ascii") + body)
            self.transport.close()

        def _peer(self) -> str:
            return f"{self.client[0]}:{self.client[1]}" if self.client else "a client"

    return GuardedProtocol
