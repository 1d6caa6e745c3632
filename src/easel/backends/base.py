"""The Backend extension point, and the Capabilities a backend declares about itself."""

from __future__ import annotations

import functools
import secrets
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any

from PIL import Image

from ..jobs import Job, Operation, PreviewSink, Rendered
from ..settings import ModelSpec

SEED_SPACE = 2**32

#: Polled by a running backend between steps: true once nobody wants the result any more.
StopCheck = Callable[[], bool]

#: A batch's previews: (part number, image index within its job, preview number, picture).
BatchPreviewSink = Callable[[int, int, int, Image.Image], None]

#: Request fields beyond OpenAI's that a backend may honour (CONTRACT §2, easel extensions).
EXTENSIONS = ("seed", "negative_prompt", "steps", "guidance_scale")


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


class BackendConfigError(ValueError):
    """A model's configuration cannot be served; reported at start-up, before anything binds."""


@dataclass(frozen=True)
class Capabilities:
    """What a model can do; the profile layer rejects anything outside it with a 400."""

    operations: frozenset[Operation]
    transparent_background: bool
    extensions: frozenset[str]
    max_steps: int = 50
    guidance_range: tuple[float, float] = (0.0, 30.0)
    max_input_images: int = 16
    #: Real intermediate previews are available for streaming.
    previews: bool = True

    def describe(self) -> dict[str, Any]:
        """The capability keys easel adds to each /v1/models entry."""
        return {
            "operations": sorted(self.operations),
            "transparent_background": self.transparent_background,
            "extensions": sorted(self.extensions),
            "max_steps": self.max_steps,
            "guidance_range": list(self.guidance_range),
            "max_input_images": self.max_input_images,
            "partial_images": self.previews,
        }


class Backend(ABC):
    """Turns frozen jobs into PIL images. Never sees wire models, bytes or HTTP.

    `run` is called from a worker thread and may block; `start` loads what the
    backend needs (weights) and `close` releases it.
    """

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    @property
    @abstractmethod
    def capabilities(self) -> Capabilities: ...

    @property
    def concurrency(self) -> int | None:
        """How many jobs `run` may serve at once; None: as many as the CPU workers allow."""
        return None

    def validate(self, job: Job) -> None:  # noqa: B027 - optional hook
        """Reject (with an APIError 400) what this model cannot do, before any work starts."""

    @property
    def default_batch_size(self) -> int:
        """Images per run when the model's `max_batch_size` is not set (1: no batching)."""
        return 1

    def batch_key(self, job: Job) -> Hashable | None:
        """Jobs with equal keys may share one run of `run_batch`; None: this job runs alone."""
        return None

    def default_seed(self, job: Job) -> int:
        """The seed for a job that names none (fixed before a job's images are split up)."""
        return secrets.randbelow(SEED_SPACE)

    def moderate_output(self, job: Job, image: Image.Image) -> Sequence[str]:
        """The output check: the moderation categories a finished image falls in (empty: fine).

        Runs in the worker thread on every image before it is delivered; `job.render.moderation`
        says how strict to be. A non-empty answer refuses the whole request with 400
        moderation_blocked (stage `output`). The default checks nothing.
        """
        return ()

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

    def start(self) -> None:  # noqa: B027 - optional hook
        """Load whatever the backend needs; called once before serving."""

    def close(self) -> None:  # noqa: B027 - optional hook
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


def _renumber(
    sink: BatchPreviewSink, number: int, start: int, index: int, preview: int, image: Image.Image
) -> None:
    sink(number, start + index, preview, image)
