"""Backends turn frozen jobs into images; the names a backend package needs are exported here.

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
    AnyBackend,
    AsyncBackend,
    AsyncPreviewSink,
    Backend,
    BackendOptions,
    BaseBackend,
    BatchPreviewSink,
    Part,
    StopCheck,
)
from .registry import available, build, resolve

__all__ = [
    "EXTENSIONS",
    "SEED_SPACE",
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
    "GenerateJob",
    "GenerationFailedError",
    "Job",
    "Operation",
    "Part",
    "PreviewSink",
    "Render",
    "Rendered",
    "StopCheck",
    "VariationJob",
    "available",
    "build",
    "resolve",
]
