"""The shapes easel answers with (CONTRACT §3-§5), as TypedDicts the code builds and openapi.py documents."""

from __future__ import annotations

from typing import Any, Literal, NotRequired

from typing_extensions import TypedDict


class ImageItem(TypedDict, total=False):
    """One `data[]` item: exactly one of `b64_json` or `url`."""

    b64_json: str
    url: str
    #: dall-e-3 only.
    revised_prompt: str
    #: easel's extension: the seed this image was drawn with.
    seed: int


class InputTokensDetails(TypedDict):
    text_tokens: int
    image_tokens: int


class Usage(TypedDict):
    """An estimate in OpenAI's token units (README, "The usage estimate")."""

    input_tokens: int
    output_tokens: int
    total_tokens: int
    input_tokens_details: InputTokensDetails


class SvgUsage(TypedDict):
    """Token usage of SVG authoring, apart from the image's own `usage` (an estimate as well)."""

    input_tokens: int
    output_tokens: int
    reasoning_tokens: int
    total_tokens: int
    model: str


class Resolved(TypedDict):
    """The resolved values gpt-image responses and stream events carry (never `auto`)."""

    background: str
    output_format: str
    size: str
    quality: str


class ImagesResponse(TypedDict):
    """The body of a non-streaming answer; dall-e models leave out everything after `data`."""

    created: int
    data: list[ImageItem]
    background: NotRequired[str]
    output_format: NotRequired[str]
    size: NotRequired[str]
    quality: NotRequired[str]
    usage: NotRequired[Usage]
    #: The non-empty `safety_identifier` of the request, else its `user`.
    safety_identifier: NotRequired[str]
    svg_usage: NotRequired[SvgUsage]


class PartialImageEvent(Resolved):
    """`image_generation.partial_image` / `image_edit.partial_image`: a real intermediate state."""

    type: str
    b64_json: str
    created_at: int
    partial_image_index: int


class CompletedEvent(Resolved):
    """`image_generation.completed` / `image_edit.completed`: one finished image and its usage."""

    type: str
    b64_json: str
    created_at: int
    usage: Usage
    safety_identifier: NotRequired[str]


class ErrorDetail(TypedDict):
    """All four keys are always present (extra keys such as `moderation_details` may follow)."""

    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(TypedDict):
    error: ErrorDetail


class StreamError(TypedDict):
    """The `event: error` data of a stream that failed after it started."""

    type: Literal["error"]
    error: ErrorDetail


class ModelEntry(TypedDict):
    """A /v1/models entry: OpenAI's four keys, then easel's capability keys."""

    id: str
    object: Literal["model"]
    created: int
    owned_by: str
    #: OpenAI's date for a retired model (or the operator's), None while it is live.
    shutdown_date: str | None
    #: The OpenAI model whose rules this id follows, and that model's family.
    mirrors: str
    family: str
    #: The served model (one backend, one queue) that answers this id.
    served_by: str
    profile: str
    strict: bool
    backend: str
    sizes: list[str]
    #: Free sizes within these limits, beside `sizes` (None: only `sizes`).
    size_rule: dict[str, float] | None
    default_size: str
    default_quality: str
    qualities: list[str]
    output_formats: list[str]
    complexity: bool
    markup: bool
    operations: list[str]
    transparent_background: bool
    extensions: list[str]
    max_steps: int
    guidance_range: list[float]
    max_input_images: int
    partial_images: bool
    #: Served ids that take this id's requests when its queue is full, or when it fails.
    overflow: NotRequired[str | None]
    fallback: NotRequired[str | None]
    #: For an upstream (`openai` backend): its host, and whether it is skipped after failures.
    upstream: NotRequired[dict[str, Any]]


class ModelList(TypedDict):
    object: Literal["list"]
    data: list[ModelEntry]


#: The shapes the OpenAPI document names in `components.schemas`.
SCHEMAS: tuple[type, ...] = (
    ImagesResponse,
    PartialImageEvent,
    CompletedEvent,
    ErrorBody,
    StreamError,
    ModelList,
)
