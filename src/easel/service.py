"""ImageService: the use-cases (plan, generate/edit/vary, stream) between the HTTP layer and backends."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import anyio.to_thread
from PIL import Image

from . import errors, imaging
from .backends.base import Backend
from .imaging import Limits, Upload
from .jobs import Delivery, Operation, Rendered
from .params import type_name
from .profiles import ModelRules, Plan
from .storage import Storage

log = logging.getLogger("easel.service")

#: The stream's event type prefix per operation (CONTRACT §4).
EVENT_PREFIX = {"generations": "image_generation", "edits": "image_edit"}


@dataclass(frozen=True)
class ServedModel:
    """A model as served: its spec's rules and the backend instance that renders it."""

    rules: ModelRules
    backend: Backend

    @property
    def id(self) -> str:
        return self.rules.spec.id

    def describe(self, created: int) -> dict[str, Any]:
        """The /v1/models entry: OpenAI's four keys, then easel's capability keys."""
        spec = self.rules.spec
        return {
            "id": spec.id,
            "object": "model",
            "created": created,
            "owned_by": spec.owned_by,
            "profile": self.rules.profile,
            "strict": spec.strict,
            "backend": spec.backend,
            "sizes": list(spec.allowed_sizes),
            "default_size": spec.resolved_default_size,
            "default_quality": spec.resolved_default_quality,
            **self.rules.caps.describe(),
        }


@dataclass(frozen=True)
class Encoded:
    rendered: Rendered
    data: bytes


class ImageService:
    """Validates requests into plans, runs them on their model's backend, and delivers the images."""

    def __init__(
        self,
        models: Sequence[ServedModel],
        default_model: str,
        storage: Storage,
        limits: Limits,
        cpu_workers: int = 1,
    ) -> None:
        self.models: dict[str, ServedModel] = {m.id: m for m in models}
        # A backend that can only run so many jobs at once gets its own gate, waited on
        # before a CPU worker is taken, so other models' requests are not held up behind it.
        self.gates = {
            m.id: anyio.CapacityLimiter(m.backend.concurrency) for m in models if m.backend.concurrency
        }
        # CPU-bound work (decode, render, encode) holds one of these; waiting is cheaper than
        # thrashing the cores and holding every request's pixels in memory at once.
        self.cpu = anyio.CapacityLimiter(cpu_workers)
        self.default_model = default_model
        self.storage = storage
        self.limits = limits
        self.started = int(time.time())

    def model_for(self, raw: Mapping[str, Any]) -> ServedModel:
        """The requested model (type-checked), or the default; 404 when it is not served."""
        name = raw.get("model")
        if name is None:
            return self.models[self.default_model]
        if not isinstance(name, str):
            raise errors.invalid_type("model", "a string", type_name(name))
        model = self.models.get(name)
        if model is None:
            raise errors.model_not_found(name)
        return model

    async def plan(
        self,
        op: Operation,
        raw: Mapping[str, Any],
        files: Mapping[str, Sequence[Upload]],
        *,
        from_form: bool,
        json: bool = False,
    ) -> tuple[ServedModel, Plan]:
        """Validate a request completely before any work starts; decoding runs off the loop."""
        model = self.model_for(raw)
        if not files:  # nothing to decode: cheaper to stay on the loop
            plan = model.rules.plan(op, raw, files, from_form=from_form, json=json, limits=self.limits)
        else:
            plan = await anyio.to_thread.run_sync(
                lambda: model.rules.plan(op, raw, files, from_form=from_form, json=json, limits=self.limits),
                limiter=self.cpu,
            )
        model.backend.validate(plan.job)
        return model, plan

    def _gate(self, model: ServedModel) -> contextlib.AbstractAsyncContextManager[Any]:
        gate = self.gates.get(model.id)
        return gate if gate is not None else contextlib.nullcontext()

    # -- non-streaming -------------------------------------------------------------------

    async def run(self, model: ServedModel, plan: Plan, base_url: str) -> dict[str, Any]:
        """Render, encode and deliver; the ImagesResponse body."""
        async with self._gate(model):
            encoded = await anyio.to_thread.run_sync(self._render_and_encode, model, plan, limiter=self.cpu)
        delivery = plan.delivery
        data = [await self._item(e, delivery, base_url) for e in encoded]
        body: dict[str, Any] = {"created": int(time.time()), "data": data}
        if delivery.gpt_fields:
            body.update(_resolved(plan))
            body["usage"] = plan.usage
        return body

    @staticmethod
    def _render_and_encode(model: ServedModel, plan: Plan) -> list[Encoded]:
        # One worker hop for both: the encode is the floor of every request's cost.
        d = plan.delivery
        return [
            Encoded(r, imaging.encode(r.image, d.output_format, d.compression))
            for r in model.backend.run(plan.job)
        ]

    async def _item(self, encoded: Encoded, delivery: Delivery, base_url: str) -> dict[str, Any]:
        item: dict[str, Any]
        if delivery.response_format == "url":
            stored = await self.storage.put(encoded.data, delivery.output_format, base_url)
            item = {"url": stored.url}
        else:
            item = {"b64_json": imaging.b64(encoded.data)}
        if delivery.revised_prompt and encoded.rendered.revised_prompt is not None:
            item["revised_prompt"] = encoded.rendered.revised_prompt
        if delivery.show_seed and encoded.rendered.seed is not None:
            item["seed"] = encoded.rendered.seed
        return item

    # -- streaming -----------------------------------------------------------------------

    async def stream(self, model: ServedModel, plan: Plan) -> AsyncIterator[tuple[str, dict[str, Any]]]:
        """(event type, data) pairs: each image's partials, then its completed event.

        The backend runs in a worker thread and hands previews over as it makes them; they
        are encoded there too, so the loop only forwards bytes.
        """
        prefix = EVENT_PREFIX[plan.job.operation]
        d = plan.delivery
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[tuple[str, int, bytes] | BaseException | None] = asyncio.Queue()

        def on_preview(index: int, partial: int, preview: Image.Image) -> None:
            data = imaging.encode(preview, d.output_format, d.compression)
            loop.call_soon_threadsafe(queue.put_nowait, ("partial_image", partial, data))

        def work() -> None:
            try:
                for r in model.backend.run(plan.job, on_preview):
                    data = imaging.encode(r.image, d.output_format, d.compression)
                    loop.call_soon_threadsafe(queue.put_nowait, ("completed", -1, data))
            except BaseException as exc:  # handed to the stream, which reports it as an event
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        async def gated_work() -> None:
            async with self._gate(model):
                await anyio.to_thread.run_sync(work, limiter=self.cpu)

        # The worker cannot be interrupted mid-render; if the client leaves, it finishes alone.
        worker = asyncio.ensure_future(gated_work())
        common = _resolved(plan)
        per_image = _per_image(plan.usage, plan.job.render.n)
        while (item := await queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            kind, partial, data = item
            event: dict[str, Any] = {
                "type": f"{prefix}.{kind}",
                "b64_json": imaging.b64(data),
                "created_at": int(time.time()),
                **common,
            }
            if kind == "partial_image":
                event["partial_image_index"] = partial
            else:
                event["usage"] = per_image
            yield event["type"], event
        await worker


def _resolved(plan: Plan) -> dict[str, Any]:
    r, d = plan.job.render, plan.delivery
    return {
        "background": r.background,
        "output_format": d.output_format,
        "size": r.size,
        "quality": r.quality,
    }


def _per_image(total: Mapping[str, Any], n: int) -> dict[str, Any]:
    """One completed event's share: the whole input, and its own image's output tokens."""
    out = int(total["output_tokens"]) // n
    return {**total, "output_tokens": out, "total_tokens": int(total["input_tokens"]) + out}


def stream_error(message: str) -> dict[str, Any]:
    """The `event: error` payload for a failure after the stream started (CONTRACT §4)."""
    return {
        "type": "error",
        "error": {
            "type": "image_generation_server_error",
            "code": "image_generation_failed",
            "message": message,
            "param": None,
        },
    }
