"""One upstream images server: a pooled HTTP client, retries that obey its headers, its failures
in OpenAI's shape, its streams read event by event, and when to skip it."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit

import httpx
import orjson

from ... import errors
from ...imaging import Upload
from ..relay import Forward, RelayedEvent
from .options import OpenAIOptions

log = logging.getLogger("easel.upstream")

#: Upstream answer headers a client gets as they came (its own rate limits, when easel sets none).
PASSED_ON = ("x-ratelimit-", "openai-processing-ms")
#: Retry headers of an error answer, passed on with it.
RETRY_HEADERS = ("retry-after", "retry-after-ms", "x-should-retry")


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


class Upstream:
    """Calls one upstream's images endpoints for one served model."""

    def __init__(
        self,
        model_id: str,
        options: OpenAIOptions,
        key: str,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.model_id = model_id
        self.options = options
        self.host = urlsplit(options.base_url).netloc
        self._key = key
        headers = {"authorization": f"Bearer {key}", "user-agent": "easel-gateway"}
        if options.organization:
            headers["openai-organization"] = options.organization
        if options.project:
            headers["openai-project"] = options.project
        o = options
        self.client = httpx.AsyncClient(
            base_url=o.base_url.rstrip("/") + "/",
            headers=headers,
            timeout=httpx.Timeout(o.timeout_seconds, connect=o.connect_timeout_seconds, pool=None),
            limits=httpx.Limits(max_connections=o.max_in_flight, max_keepalive_connections=o.max_in_flight),
            transport=transport,
        )
        self.circuit = Circuit(o.failure_threshold, o.skip_seconds)

    async def close(self) -> None:
        await self.client.aclose()

    # -- one request ---------------------------------------------------------------------

    async def send(self, forward: Forward, fields: Mapping[str, Any]) -> httpx.Response:
        """The upstream's 200 answer, its body not yet read; retried while nothing can have been
        billed (a refused connection, a 429 or 5xx answer), as its retry headers allow."""
        attempt = 0
        while True:
            retry_in: float | None = None
            try:
                response = await self.client.send(self._request(forward, fields), stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                failure: errors.APIError = self.unreachable(exc)
                retry_in = self._backoff(attempt)
            except httpx.TimeoutException:
                self.circuit.failed()
                raise self.timed_out() from None
            except httpx.TransportError as exc:
                self.circuit.failed()
                raise self.dropped(exc) from None
            else:
                if response.status_code < 400:
                    return response
                failure = await self._error(response)
                if response.status_code == 429 or response.status_code >= 500:
                    retry_in = _asked_wait(response.headers) or self._backoff(attempt)
            wait_ok = retry_in is not None and retry_in <= self.options.max_retry_wait_seconds
            if retry_in is None or not wait_ok or attempt >= self.options.max_retries:
                if failure.status >= 500:
                    self.circuit.failed()
                elif isinstance(failure, errors.UpstreamError) and failure.status != 429:
                    self.circuit.succeeded()  # a 4xx of its own: the upstream is well
                raise failure
            attempt += 1
            log.info(
                "upstream %s: %s; retry %d in %.2f s", self.host, failure.message[:160], attempt, retry_in
            )
            await asyncio.sleep(retry_in)

    async def body(self, response: httpx.Response) -> dict[str, Any]:
        """A 200 answer's JSON body, read whole (within `max_response_bytes`)."""
        try:
            raw = await self._read(response)
        finally:
            await response.aclose()
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:
            value = None
        if not isinstance(value, dict) or not isinstance(value.get("data"), list):
            self.circuit.failed()
            raise errors.BadGatewayError(
                f"The upstream images server at {self.host} answered 200 with a body that is not an "
                "images response.",
                code="upstream_malformed",
                headers={"x-should-retry": "false"},
            )
        self.circuit.succeeded()
        return value

    async def events(self, response: httpx.Response) -> AsyncIterator[RelayedEvent]:
        """A 200 stream's events as they arrive; a cut or a stall past the read timeout raises
        the 502 or 504 a stream's `event: error` carries."""
        event, data = "", []
        try:
            async for line in response.aiter_lines():
                if len(line) > self.options.max_response_bytes:
                    raise errors.BadGatewayError(
                        f"The upstream images server at {self.host} sent a stream event over "
                        f"{self.options.max_response_bytes} bytes.",
                        code="upstream_malformed",
                    )
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
                    parsed = _json("\n".join(data))
                    if parsed is None:
                        raise errors.BadGatewayError(
                            f"The upstream at {self.host} sent a stream event that is not JSON.",
                            code="upstream_malformed",
                        )
                    yield event or str(parsed.get("type", "message")), parsed
                event, data = "", []
        except httpx.TimeoutException:
            self.circuit.failed()
            raise self.timed_out() from None
        except httpx.TransportError as exc:
            self.circuit.failed()
            raise self.dropped(exc) from None
        finally:
            await response.aclose()
        self.circuit.succeeded()

    async def download(self, url: str) -> bytes:
        """GET a URL on the upstream's own host with the pooled client (for `rehost_urls`)."""
        try:
            async with self.client.stream("GET", url) as response:
                if response.status_code != 200:
                    raise errors.BadGatewayError(
                        f"The upstream images server at {self.host} answered {response.status_code} "
                        "for the image URL it returned.",
                        code="upstream_url_failed",
                    )
                return await self._read(response)
        except httpx.TimeoutException:
            raise self.timed_out() from None
        except httpx.TransportError as exc:
            raise self.dropped(exc) from None

    # -- failures, in OpenAI's shape -----------------------------------------------------

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

    async def _error(self, response: httpx.Response) -> errors.APIError:
        """The upstream's error answer as the client gets it: relayed byte for byte, except that
        a refusal of easel's own key never reaches a client (it is the operator's to fix)."""
        try:
            raw = await self._read(response)
        except errors.APIError as exc:
            return exc
        finally:
            await response.aclose()
        status = response.status_code
        headers = {k: v for k, v in response.headers.items() if k in RETRY_HEADERS}
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
        envelope = _json(raw.decode("utf-8", "replace"))
        if envelope is None or not isinstance(envelope.get("error"), dict):
            return errors.BadGatewayError(
                f"The upstream images server at {self.host} answered {status} with a body that is not "
                "an OpenAI error.",
                code="upstream_malformed",
                headers={k: v for k, v in headers.items() if k in RETRY_HEADERS},
            )
        scrubbed = self.scrub(raw.decode("utf-8", "replace")).encode()
        return errors.UpstreamError(status, scrubbed, envelope, headers)

    def passed_on(self, headers: httpx.Headers) -> dict[str, str]:
        """The upstream's headers a client gets: its request id (renamed), its rate limits."""
        kept = {k: v for k, v in headers.items() if k.startswith(PASSED_ON)}
        if "x-request-id" in headers:
            kept["x-upstream-request-id"] = headers["x-request-id"]
        return kept

    def scrub(self, text: str) -> str:
        """`text` with the upstream key (and its tail, which OpenAI's messages quote) masked."""
        text = text.replace(self._key, "***")
        tail = self._key[-4:]
        return text.replace(f"****{tail}", "****") if len(self._key) > 8 else text

    def _backoff(self, attempt: int) -> float:
        return float(min(8.0, 0.5 * 2**attempt) * (0.75 + random.random() / 2))

    async def _read(self, response: httpx.Response) -> bytes:
        most = self.options.max_response_bytes
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > most:
                raise errors.BadGatewayError(
                    f"The upstream images server at {self.host} sent an answer over {most} bytes "
                    "(max_response_bytes).",
                    code="upstream_too_large",
                    headers={"x-should-retry": "false"},
                )
        return bytes(body)

    # -- building the request ------------------------------------------------------------

    def _request(self, forward: Forward, fields: Mapping[str, Any]) -> httpx.Request:
        path = f"images/{forward.operation}"
        headers = {"x-client-request-id": forward.request_id}
        if forward.stream:
            headers["accept"] = "text/event-stream"
        if not forward.form:
            return self.client.build_request(
                "POST",
                path,
                content=orjson.dumps(fields),
                headers={**headers, "content-type": "application/json"},
            )
        return self.client.build_request(
            "POST", path, data=dict(_form_fields(fields)), files=_files(forward.files), headers=headers
        )


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


def _files(files: Mapping[str, Sequence[Upload]]) -> list[tuple[str, tuple[str, bytes, str]]]:
    """The file parts under their own names, their bytes unchanged."""
    return [
        (name, (u.filename or "image", u.data, u.content_type or "application/octet-stream"))
        for name, uploads in files.items()
        for u in uploads
    ]


def _asked_wait(headers: httpx.Headers) -> float | None:
    """The wait an answer asks for: `retry-after-ms`, else `retry-after` in seconds."""
    for name, scale in (("retry-after-ms", 1000.0), ("retry-after", 1.0)):
        with contextlib.suppress(ValueError, TypeError):
            if name in headers:
                return max(0.0, float(headers[name]) / scale)
    return None


def _json(text: str) -> dict[str, Any] | None:
    try:
        value = orjson.loads(text)
    except orjson.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None
