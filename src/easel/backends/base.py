"""The backend contract: `Options`, and the kinds that render, `Backend` (threads) and `AsyncBackend`."""

from __future__ import annotations

import functools
import secrets
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, ClassVar

from PIL import Image
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import BackendConfigError
from ..jobs import Capabilities, Job, PreviewSink, Rendered

if TYPE_CHECKING:
    from ..settings import ModelSpec

SEED_SPACE = 2**32

#: Polled by a running backend between steps: true once nobody wants the result any more.
StopCheck = Callable[[], bool]

#: A batch's previews: (part number, image index within its job, preview number, picture).
BatchPreviewSink = Callable[[int, int, int, Image.Image], None]

#: An async backend's previews: (image index, preview number, picture), awaited.
AsyncPreviewSink = Callable[[int, int, Image.Image], Awaitable[None]]


class BackendOptions(BaseModel):
    """A backend's `[models.options]` table. Subclass it with a described field per option:
    unknown keys are refused at start-up, and `easel config-reference` documents the fields."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Part:
    """Images `start` .. `start + count - 1` of a job; image i is drawn with seed `job seed + i`."""

    job: Job
    start: int
    count: int

    def alone(self) -> Job:
        """This part as a job of its own: `count` images from seed `seed + start`."""
        r = self.job.render
        seed = None if r.seed is None else (r.seed + self.start) % SEED_SPACE
        return replace(self.job, render=replace(r, n=self.count, seed=seed))


class BaseBackend(ABC):
    """What every backend declares and may override; subclass `Backend` or `AsyncBackend`.

    A backend never sees wire models, bytes or HTTP: it gets frozen jobs with resolved values
    and returns PIL images. What it cannot do it declares (`capabilities`) or refuses
    (`validate`), so a client gets a 400 naming the parameter before any work starts.
    """

    #: The model of this backend's `[models.options]`; the options are validated against it once,
    #: when the backend is built, and kept as `self.options`.
    Options: ClassVar[type[BackendOptions]] = BackendOptions

    def __init__(self, spec: ModelSpec, options: BackendOptions | None = None) -> None:
        self.spec = spec
        self.options = options if options is not None else self.options_of(spec)

    @classmethod
    def options_of(cls, spec: ModelSpec) -> BackendOptions:
        """`spec.options` validated against `Options`, or a BackendConfigError naming each problem."""
        try:
            return cls.Options.model_validate(spec.options)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'options'}: {e['msg']}" for e in exc.errors()
            )
            raise BackendConfigError(
                f"model {spec.id!r}: invalid options for backend {spec.backend!r}: {problems}"
            ) from None

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @property
    def concurrency(self) -> int | None:
        """How many runs may be in flight at once; None: as many as the CPU workers allow."""
        return None

    def validate(self, job: Job) -> None:  # noqa: B027 - optional hook
        """Reject (with an APIError 400) what this model cannot do, before any work starts."""

    @property
    def default_batch_size(self) -> int:
        """Images per run when the model's `max_batch_size` is not set (1: no batching)."""
        return 1

    def batch_key(self, job: Job) -> Hashable | None:
        """Jobs with equal keys may share one run; None: this job runs alone."""
        return None

    def default_seed(self, job: Job) -> int:
        """The seed for a job that names none (fixed before a job's images are split up)."""
        return secrets.randbelow(SEED_SPACE)

    def moderate_output(self, job: Job, image: Image.Image) -> Sequence[str]:
        """The output check: the moderation categories a finished image falls in (empty: fine).

        Runs in a worker thread on every image before it is delivered; `job.render.moderation`
        says how strict to be. A non-empty answer refuses the whole request with 400
        moderation_blocked (stage `output`). The default checks nothing.
        """
        return ()


class Backend(BaseBackend):
    """A backend that computes: `run` is called from a worker thread holding one CPU slot, and
    may block; `start` loads what it needs (weights) and `close` releases it, both in a thread."""

    def run_batch(
        self, parts: Sequence[Part], on_preview: BatchPreviewSink | None = None, stop: StopCheck | None = None
    ) -> Iterator[tuple[int, Rendered]]:
        """Render several parts together, yielding (part number, image) in each part's order.

        Only parts with equal `batch_key`s are passed together. This default runs them one
        after another; a backend that can really batch overrides it.
        """
        for number, part in enumerate(parts):
            sink = None
            if on_preview is not None:
                sink = functools.partial(_renumber, on_preview, number, part.start)
            for rendered in self.run(part.alone(), sink, stop):
                yield number, rendered

    def start(self) -> None:
        """Load whatever the backend needs; called once before serving."""

    def close(self) -> None:
        """Release resources; called once at shutdown."""

    @abstractmethod
    def run(
        self, job: Job, on_preview: PreviewSink | None = None, stop: StopCheck | None = None
    ) -> Iterator[Rendered]:
        """Render `job.render.n` images, calling `on_preview` with intermediate states.

        Yield each image as soon as it is done, so a stream can send it before the next.
        When `stop()` turns true (every requester left, or time ran out) finish early: what
        is yielded after that is thrown away.
        """


class AsyncBackend(BaseBackend):
    """A backend that waits rather than computes (an upstream API, a remote worker): `render`
    runs on the event loop and holds no CPU slot, so many requests may be in flight at once.
    Only the output check and the encoding of its images take a slot. It must never block."""

    @property
    def concurrency(self) -> int:
        """Runs in flight at once (each waits on I/O, not on a core)."""
        return 16

    async def start(self) -> None:
        """Open connections; called once, on the event loop, before serving."""

    async def close(self) -> None:
        """Close connections; called once at shutdown."""

    @abstractmethod
    def render(
        self, job: Job, on_preview: AsyncPreviewSink | None = None, stop: StopCheck | None = None
    ) -> AsyncIterator[Rendered]:
        """Render `job.render.n` images as `Backend.run` does, awaiting instead of blocking."""


#: Either kind of backend that renders images (a relay renders nothing: see `relay`).
Renderer = Backend | AsyncBackend


def _renumber(
    sink: BatchPreviewSink, number: int, start: int, index: int, preview: int, image: Image.Image
) -> None:
    sink(number, start + index, preview, image)
