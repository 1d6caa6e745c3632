"""The public names are pinned: `easel` for embedding the server, `easel.backends` for plugin authors."""

from __future__ import annotations

import easel
import easel.backends


def test_easel_exports() -> None:
    assert easel.__all__ == ["Settings", "__version__", "create_app", "load_settings"]
    for name in easel.__all__:
        assert getattr(easel, name) is not None


def test_backend_package_exports() -> None:
    assert easel.backends.__all__ == [
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
    for name in easel.backends.__all__:
        assert getattr(easel.backends, name) is not None
