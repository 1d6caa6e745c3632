"""One upstream images server: a pooled HTTP client, retries that obey its headers, its failures
in OpenAI's shape, its streams read event by event, and when to skip it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from multidict import CIMultiDictProxy

from ... import errors
from ..relay import Forward, RelayedEvent
from .options import OpenAIOptions

log = logging.getLogger("easel.upstream")

#: Upstream answer headers a client gets as they came (its own rate limits, when easel sets none).
PASSED_ON = ("x-ratelimit-", "openai-processing-ms")
#: Retry headers of an error answer, passed on with it.
RETRY_HEADERS = ("retry-after", "retry-after-ms", "x-should-retry")
#: Nothing reached the upstream, or nothing was taken by it: safe to retry.
UNREACHED = (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)
#: The upstream took the request and said nothing more within the read timeout.
STALLED = (aiohttp.SocketTimeoutError, asyncio.TimeoutError)
#: The connection broke after the request was sent.
BROKEN = (aiohttp.ClientError,)


class Circuit:
    """Consecutive failures; past `threshold` the upstream is skipped as a target for `seconds`."""

    def __init__(self, threshold: int, seconds: float) -> None:
        self.threshold, self.seconds = threshold, seconds
        self.failures = 0
        self.open_until = 0.0

    @property
    def closed(self) -> bool:
        return time.monotonic() >= self.open_until

    def skipped_for(self) -> float:
        return max(0.0, self.open_until - time.monotonic())

    def failed(self) -> None:
        self.failures += 1
        if self.failures >= self.threshold:
            self.open_until = time.monotonic() + self.seconds

    def succeeded(self) -> None:
        self.failures, self.open_until = 0, 0.0


@dataclass(frozen=True)
class Reply:
    """An upstream's 200 answer, its body not yet read."""

    response: aiohttp.ClientResponse

    @property
    def headers(self) -> CIMultiDictProxy[str]:
        return self.response.headers

    @property
    def streamed(self) -> bool:
        return self.response.content_type == "text/event-stream"


class Upstream:
    """Calls one upstream's images endpoints for one served model, on one pooled session."""

    def __init__(self, model_id: str, options: OpenAIOptions, key: str | None) -> None:
        self.model_id = model_id
        self.options = options
        self.base = options.base_url.rstrip("/")
        self.host = urlsplit(options.base_url).netloc
        self._key = key
        self.headers = {"user-agent": "easel-gateway"}
        if key is not None:
            self.headers["authorization"] = f"Bearer {key}"
        if options.organization:
            self.headers["openai-organization"] = options.organization
        if options.project:
            self.headers["openai-project"] = options.project
        self.circuit = Circuit(options.failure_threshold, options.skip_seconds)
        self._session: aiohttp.ClientSession | None = None

    @property
    def session(self) -> aiohttp.ClientSession:
        """The pooled session, opened on first use (it needs the running loop)."""
        if self._session is None:
            o = self.options
            self._session = aiohttp.ClientSession(
                headers=self.headers,
                timeout=aiohttp.ClientTimeout(
                    total=None, sock_connect=o.connect_timeout_seconds, sock_read=o.timeout_seconds
                ),
                connector=aiohttp.TCPConnector(limit=o.max_in_flight, ttl_dns_cache=300),
                read_bufsize=1 << 20,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    # -- one request ---------------------------------------------------------------------

    async def send(self, forward: Forward, fields: Mapping[str, Any]) -> Reply:
        """The upstream's 200 answer, its body not yet read; retried while nothing can have been
        billed (a refused connection, a 429 or 5xx answer), as its retry headers allow."""
        attempt = 0
        url, headers = f"{self.base}/images/{forward.operation}", {"x-client-request-id": forward.request_id}
        if forward.stream:
            headers["accept"] = "text/event-stream"
        if not forward.form:
            headers["content-type"] = "application/json"
        while True:
            retry_in: float | None = None
            try:
                with self._reached():
                    response = await self.session.post(url, data=_payload(forward, fields), headers=headers)
            except UNREACHED as exc:
                failure: errors.APIError = self.unreachable(exc)
                retry_in = self._backoff(attempt)
            else:
                if response.status < 400:
                    return Reply(response)
                failure = await self._error(response)
                if response.status == 429 or response.status >= 500:
                    retry_in = _asked_wait(response.headers) or self._backoff(attempt)
            wait_ok = retry_in is not None and retry_in <= self.options.max_retry_wait_seconds
            if retry_in is None or not wait_ok or attempt >= self.options.max_retries:
                if failure.status >= 500:
                    self.circuit.failed()
                elif isinstance(failure, errors.UpstreamError) and failure.status != 429:
                    self.circuit.succeeded()  # a 4xx of its own: the upstream is well
                raise failure
            attempt += 1
            most = self.options.max_retries
            log.info("%s Retry %d of %d in %.2f s.", failure.message[:160], attempt, most, retry_in)
            await asyncio.sleep(retry_in)

    async def body(self, reply: Reply) -> tuple[bytes, dict[str, Any]]:
        """A 200 answer's JSON body, read whole (within `max_response_bytes`): its bytes as they
        came, and parsed."""
        try:
            raw = await self._read(reply.response)
        finally:
            reply.response.release()
        value = _json(raw)
        if value is None or not isinstance(value.get("data"), list):
            self.circuit.failed()
            raise errors.BadGatewayError(
                f"The upstream images server at {self.host} answered 200 with a body that is not an "
                "images response.",
                code="upstream_malformed",
                headers={"x-should-retry": "false"},
            )
        self.circuit.succeeded()
        return raw, value

    async def events(self, reply: Reply) -> AsyncGenerator[RelayedEvent, None]:
        """A 200 stream's events as they arrive; a cut or a stall past the read timeout raises
        the 502 or 504 a stream's `event: error` carries."""
        event, data = "", []
        try:
            with self._reached():
                async for line in self._lines(reply.response):
                    if line.startswith(":"):
                        continue
                    if line:
                        name, _, value = line.partition(":")
                        value = value[1:] if value.startswith(" ") else value
                        if name == "event":
                            event = value
                        elif name == "data":
                            data.append(value)
                        continue
                    if data:
                        parsed = _json("\n".join(data).encode())
                        if parsed is None:
                            raise errors.BadGatewayError(
                                f"The upstream at {self.host} sent a stream event that is not JSON.",
                                code="upstream_malformed",
                            )
                        yield event or str(parsed.get("type", "message")), parsed
                    event, data = "", []
        finally:
            reply.response.release()
        self.circuit.succeeded()

    async def download(self, url: str) -> bytes:
        """GET a URL on the upstream's own host with the pooled session (for `rehost_urls`)."""
        with self._reached(count=False):
            async with self.session.get(url) as response:
                if response.status != 200:
                    raise errors.BadGatewayError(
                        f"The upstream images server at {self.host} answered {response.status} "
                        "for the image URL it returned.",
                        code="upstream_url_failed",
                    )
                return await self._read(response)

    # -- failures, in OpenAI's shape -----------------------------------------------------

    @contextlib.contextmanager
    def _reached(self, *, count: bool = True) -> Iterator[None]:
        """Inside, the request may have reached the upstream: a stall is its 504 and a cut its
        502, neither to be retried (counted against it, unless `count` is false). A request that
        never reached it (UNREACHED) passes through, to be retried."""
        try:
            yield
        except UNREACHED:
            raise
        except STALLED:
            if count:
                self.circuit.failed()
            raise self.timed_out() from None
        except BROKEN as exc:
            if count:
                self.circuit.failed()
            raise self.dropped(exc) from None

    def unreachable(self, exc: BaseException) -> errors.BadGatewayError:
        """Nothing reached the upstream: the client may retry."""
        return errors.BadGatewayError(
            f"The upstream images server at {self.host} could not be reached ({type(exc).__name__}).",
            code="upstream_unreachable",
            headers=errors.retry_headers(1.0),
        )

    def timed_out(self) -> errors.GatewayTimeoutError:
        return errors.GatewayTimeoutError(
            f"The upstream images server at {self.host} did not answer within "
            f"{self.options.timeout_seconds:g} s; it may have done (and billed) the work: retry with care.",
            code="upstream_timeout",
            headers={"x-should-retry": "false"},
        )

    def dropped(self, exc: BaseException) -> errors.BadGatewayError:
        return errors.BadGatewayError(
            f"The upstream images server at {self.host} closed the connection before its answer was "
            f"complete ({type(exc).__name__}); it may have done (and billed) the work, so retry with care.",
            code="upstream_dropped",
            headers={"x-should-retry": "false"},
        )

    async def _error(self, response: aiohttp.ClientResponse) -> errors.APIError:
        """The upstream's error answer as the client gets it: relayed byte for byte, except that
        a refusal of easel's own key never reaches a client (it is the operator's to fix)."""
        try:
            raw = await self._read(response)
        except errors.APIError as exc:
            return exc
        except (*STALLED, *BROKEN) as exc:
            return self.dropped(exc)
        finally:
            response.release()
        status = response.status
        headers = {k.lower(): v for k, v in response.headers.items() if k.lower() in RETRY_HEADERS}
        headers |= self.passed_on(response.headers)
        if status in (401, 403):
            log.error(
                "upstream %s refused easel's key for model %s with %d: %s",
                self.host, self.model_id, status, self.scrub(raw.decode("utf-8", "replace"))[:300],
            )  # fmt: skip
            return errors.BadGatewayError(
                f"The upstream images server at {self.host} refused this server's credentials ({status}); "
                "the operator must check the upstream key.",
                code="upstream_auth_failed",
                headers={"x-should-retry": "false"},
            )
        envelope = _json(raw)
        if envelope is None or not isinstance(envelope.get("error"), dict):
            return errors.BadGatewayError(
                f"The upstream images server at {self.host} answered {status} with a body that is not "
                "an OpenAI error.",
                code="upstream_malformed",
                headers={k: v for k, v in headers.items() if k in RETRY_HEADERS},
            )
        scrubbed = self.scrub(raw.decode("utf-8", "replace")).encode()
        return errors.UpstreamError(status, scrubbed, envelope, headers)

    def passed_on(self, headers: Mapping[str, str]) -> dict[str, str]:
        """The upstream's headers a client gets: its request id (renamed), its rate limits."""
        kept = {k.lower(): v for k, v in headers.items() if k.lower().startswith(PASSED_ON)}
        request_id = headers.get("x-request-id")
        if request_id is not None:
            kept["x-upstream-request-id"] = request_id
        return kept

    def scrub(self, text: str) -> str:
        """`text` with the upstream key (and its tail, which OpenAI's messages quote) masked."""
        if not self._key:
            return text
        text = text.replace(self._key, "***")
        tail = self._key[-4:]
        return text.replace(f"****{tail}", "****") if len(self._key) > 8 else text

    def _backoff(self, attempt: int) -> float:
        return float(min(8.0, 0.5 * 2**attempt) * (0.75 + random.random() / 2))

    def _too_large(self) -> errors.BadGatewayError:
        return errors.BadGatewayError(
            f"The upstream images server at {self.host} sent an answer over "
            f"{self.options.max_response_bytes} bytes (max_response_bytes).",
            code="upstream_too_large",
            headers={"x-should-retry": "false"},
        )

    async def _read(self, response: aiohttp.ClientResponse) -> bytes:
        most = self.options.max_response_bytes
        if response.content_length is not None and response.content_length > most:
            raise self._too_large()
        body = bytearray()
        async for chunk in response.content.iter_any():
            body += chunk
            if len(body) > most:
                raise self._too_large()
        return bytes(body)

    async def _lines(self, response: aiohttp.ClientResponse) -> AsyncIterator[str]:
        """A stream's lines (LF or CRLF ends) as they arrive, none longer than `max_response_bytes`."""
        pending = b""
        async for chunk in response.content.iter_any():
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                yield line.removesuffix(b"\r").decode("utf-8", "replace")
            if len(pending) > self.options.max_response_bytes:
                raise self._too_large()
        if pending:
            yield pending.removesuffix(b"\r").decode("utf-8", "replace")


def _payload(forward: Forward, fields: Mapping[str, Any]) -> bytes | aiohttp.FormData:
    """The body to send: JSON as the client sent it (the model rewritten), or the form re-posted
    part by part, every file's bytes unchanged."""
    if not forward.form:
        return orjson.dumps(fields)
    form = aiohttp.FormData(quote_fields=False)
    for name, value in _form_fields(fields):
        form.add_field(name, value)
    for name, uploads in forward.files.items():
        for u in uploads:
            form.add_field(name, u.data, filename=u.filename or "image",
                           content_type=u.content_type or "application/octet-stream")  # fmt: skip
    return form


def _form_fields(fields: Mapping[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """Form fields as the SDKs send them: nested objects as `svg[model]`, values as text."""
    out: list[tuple[str, str]] = []
    for name, value in fields.items():
        key = f"{prefix}[{name}]" if prefix else name
        if isinstance(value, Mapping):
            out += _form_fields(value, key)
        elif isinstance(value, bool):
            out.append((key, "true" if value else "false"))
        elif value is not None:
            out.append((key, str(value)))
    return out


def _asked_wait(headers: Mapping[str, str]) -> float | None:
    """The wait an answer asks for: `retry-after-ms`, else `retry-after` in seconds."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        with contextlib.suppress(ValueError, TypeError):
            if name in headers:
                return max(0.0, float(headers[name]) / scale)
    return None


def _json(text: bytes) -> dict[str, Any] | None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
