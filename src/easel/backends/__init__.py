"""Backends turn jobs into images, or relay requests upstream; what a backend package needs is here.

A third-party backend is a package with one entry point in the `easel.backends` group
(docs/backends.md); the built-in `placeholder` and `diffusers` are registered the same way.
"""

from ..errors import BackendConfigError, GenerationFailedError
from ..jobs import (
    EXTENSIONS,
    Capabilities,
    EditJob,
    GenerateJob,
    Job,
    Operation,
    PreviewSink,
    Render,
    Rendered,
    VariationJob,
)
from .base import (
    SEED_SPACE,
    AsyncBackend,
    AsyncPreviewSink,
    Backend,
    BackendOptions,
    BaseBackend,
    BatchPreviewSink,
    Part,
    Renderer,
    StopCheck,
)
from .registry import available, build, lifecycle, resolve
from .relay import Answer, AnyBackend, Forward, RelayBackend, RelayedEvent

__all__ = [
    "EXTENSIONS",
    "SEED_SPACE",
    "Answer",
    "AnyBackend",
    "AsyncBackend",
    "AsyncPreviewSink",
    "Backend",
    "BackendConfigError",
    "BackendOptions",
    "BaseBackend",
    "BatchPreviewSink",
    "Capabilities",
    "EditJob",
    "Forward",
    "GenerateJob",
    "GenerationFailedError",
    "Job",
    "Operation",
    "Part",
    "PreviewSink",
    "RelayBackend",
    "RelayedEvent",
    "Render",
    "Rendered",
    "Renderer",
    "StopCheck",
    "VariationJob",
    "available",
    "build",
    "lifecycle",
    "resolve",
]
