"""Fake backends that record the jobs they get, or fail on purpose."""

from __future__ import annotations

from collections.abc import Iterator

from PIL import Image

from easel.backends import EXTENSIONS, Backend, Capabilities, Job, PreviewSink, Rendered, StopCheck


class RecordingBackend(Backend):
    """Records jobs; renders flat grey images (and one preview each when asked)."""

    def __init__(
        self, spec: object = None, *, fail_after_preview: bool = False, fail: BaseException | None = None
    ) -> None:
        self.jobs: list[Job] = []
        self.fail_after_preview = fail_after_preview
        self.fail = fail

    @property
    def capabilities(self) -> Capabilities:
        return Capabilities(
            operations=frozenset({"generations", "edits", "variations"}),
            transparent_background=False,
            extensions=frozenset(EXTENSIONS),
        )

    def run(
        self, job: Job, on_preview: PreviewSink | None = None, stop: StopCheck | None = None
    ) -> Iterator[Rendered]:
        self.jobs.append(job)
        if self.fail is not None:
            raise self.fail
        r = job.render
        for i in range(r.n):
            if on_preview is not None and r.previews:
                on_preview(i, 0, Image.new("RGB", (r.width, r.height), (10, 10, 10)))
                if self.fail_after_preview:
                    raise RuntimeError("the GPU caught fire")
            yield Rendered(image=Image.new("RGB", (r.width, r.height), (128, 128, 128)), seed=i)
