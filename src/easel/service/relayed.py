"""The relayed path: a plan sent on to its upstream, the answer passed back with easel's URLs and usage."""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncGenerator
from typing import Any

import orjson
import pybase64

from .. import errors
from ..backends import Answer, Forward, RelayBackend
from ..contract.rules import Plan
from ..governance.gate import Admission
from ..metrics import Metrics
from ..storage import Storage
from .calls import Asked, Call, Event, Route
from .local import store


class Relayed:
    """Sends plans to the upstreams of the models an `openai` (relay) backend serves."""

    def __init__(self, storage: Storage, metrics: Metrics) -> None:
        self.storage = storage
        self.metrics = metrics

    async def answer(
        self, route: Route, plan: Plan, asked: Asked, call: Call, admission: Admission
    ) -> tuple[bytes, int]:
        """The upstream's body as it came (its bytes unchanged), or with its base64 hosted (or
        its URLs re-hosted) where the client asked for URLs, and its image count; its real
        usage goes to the usage row."""
        relay = _relay(route)
        answer = await self._send(route, relay, plan, asked, call)
        body = answer.body
        if body is None:
            raise errors.BadGatewayError(
                f"The upstream for '{route.id}' answered with a stream, which was not asked for.",
                code="upstream_malformed",
            )
        delivery = plan.delivery
        admission.tokens = _tokens(body.get("usage"))
        content = answer.raw
        if delivery.response_format == "url":
            fmt = str(body.get("output_format") or delivery.output_format)
            body["data"] = [await self._hosted(route, relay, item, fmt, call) for item in body["data"]]
            content = None
        return content or orjson.dumps(body), len(body["data"])

    async def open(
        self, route: Route, plan: Plan, asked: Asked, call: Call, admission: Admission
    ) -> AsyncGenerator[Event, None]:
        """The upstream's stream, once it has answered 200: its events, passed on as they come."""
        answer = await self._send(route, _relay(route), plan, asked, call)
        if answer.events is None:
            raise errors.BadGatewayError(
                f"The upstream for '{route.id}' answered a stream request without a stream.",
                code="upstream_malformed",
            )
        return self._counted(route.model.id, answer.events, admission)

    async def _send(self, route: Route, relay: RelayBackend, plan: Plan, asked: Asked, call: Call) -> Answer:
        fields = dict(asked.fields)
        if plan.delivery.response_format == "url" and relay.base64_only:
            fields.pop("response_format", None)  # gpt-image upstreams return base64; easel hosts it
        forward = Forward(
            operation=asked.op,
            model=route.id,
            fields=fields,
            files=asked.files,
            form=asked.form,
            stream=plan.delivery.stream,
            request_id=call.request_id,
        )
        model_id = route.model.id
        started = time.monotonic()
        try:
            answer = await relay.relay(forward)
        except errors.APIError as exc:
            self.metrics.upstream_errors.labels(model_id, str(exc.status)).inc()
            raise
        finally:
            self.metrics.upstream_seconds.labels(model_id).observe(time.monotonic() - started)
        own_limits = any(k.startswith("x-ratelimit-") for k in call.headers)
        for name, value in answer.headers.items():
            if not (own_limits and name.startswith("x-ratelimit-")):  # easel's own limits are the client's
                call.headers[name] = value
        return answer

    async def _hosted(
        self, route: Route, relay: RelayBackend, item: dict[str, Any], fmt: str, call: Call
    ) -> dict[str, Any]:
        """An item with easel's signed URL in place of its base64 (or of the upstream's URL)."""
        rest = {k: v for k, v in item.items() if k not in ("b64_json", "url")}
        if isinstance(item.get("b64_json"), str):
            data = pybase64.b64decode(item["b64_json"])
        elif isinstance(item.get("url"), str) and relay.rehost_urls:
            data = await relay.fetch(item["url"])
        else:
            return item
        return {
            "url": await store(self.storage, self.metrics, route.model.id, data, fmt, call.origin),
            **rest,
        }

    async def _counted(
        self, model_id: str, events: AsyncGenerator[Event, None], admission: Admission
    ) -> AsyncGenerator[Event, None]:
        """The events, each completed one counted as a delivered image and its usage added up; a
        stream the upstream cuts or stalls counts as an upstream error."""
        inputs = outputs = 0
        try:
            async with contextlib.aclosing(events):
                async for kind, data in events:
                    yield kind, data
                    if kind.endswith(".completed"):
                        admission.images += 1
                        tokens = _tokens(data.get("usage"))
                        if tokens is not None:
                            inputs, outputs = max(inputs, tokens[0]), outputs + tokens[1]
                            admission.tokens = (inputs, outputs)
                    elif kind == "error":
                        admission.status = 502
        except errors.APIError as exc:
            self.metrics.upstream_errors.labels(model_id, str(exc.status)).inc()
            raise


def _relay(route: Route) -> RelayBackend:
    relay = route.model.relay
    assert relay is not None, f"{route.model.id} is not relayed"
    return relay


def _tokens(usage: Any) -> tuple[int, int] | None:
    """(input, output) tokens of an upstream's `usage`, when it reported them."""
    if not isinstance(usage, dict):
        return None
    given, made = usage.get("input_tokens"), usage.get("output_tokens")
    if isinstance(given, int) and isinstance(made, int):
        return given, made
    return None
