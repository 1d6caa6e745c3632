"""The Backend extension point, and the Capabilities a backend declares about itself."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..jobs import Job, Operation, PreviewSink, Rendered
from ..settings import ModelSpec

#: Polled by a running backend between steps: true once nobody wants the result any more.
StopCheck = Callable[[], bool]

#: Request fields beyond OpenAI's that a backend may honour (CONTRACT §2, easel extensions).
EXTENSIONS = ("seed", "negative_prompt", "steps", "guidance_scale")


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
