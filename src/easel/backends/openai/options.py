"""OpenAIOptions: an upstream model's `[models.options]` table, and where its key comes from."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from ...errors import BackendConfigError
from ..base import BackendOptions


class OpenAIOptions(BackendOptions):
    """Where the upstream is, how to authenticate to it, and how patiently to call it."""

    base_url: str = Field(
        "https://api.openai.com/v1",
        pattern=r"^https?://[^/\s]+(/\S*)?$",
        description="The upstream's API root (any OpenAI-compatible images server), up to `/v1`.",
    )
    api_key_env: str | None = Field(
        None, description="The environment variable holding the upstream key (default: OPENAI_API_KEY)."
    )
    api_key_file: Path | None = Field(None, description="A file holding the upstream key, instead.")
    send_key: bool = Field(
        True,
        description="Send a bearer key upstream; false for an upstream without auth (a local vLLM-Omni).",
    )
    model: str | None = Field(
        None, description="The upstream's model name (default: the id the client named, when this "
        "model answers it; else this model's id)."
    )  # fmt: skip
    organization: str | None = Field(None, description="Sent upstream as `OpenAI-Organization`.")
    project: str | None = Field(None, description="Sent upstream as `OpenAI-Project`.")
    timeout_seconds: float = Field(600.0, gt=0, description="Longest wait for any read from the upstream.")
    connect_timeout_seconds: float = Field(10.0, gt=0, description="Longest wait to connect to the upstream.")
    max_retries: int = Field(
        2, ge=0, le=10, description="Retries of a connection error, 429 or 5xx, before anything reached "
        "the client, obeying the upstream's retry headers."
    )  # fmt: skip
    max_retry_wait_seconds: float = Field(
        20.0,
        ge=0,
        description="A retry the upstream asks to wait longer for is not made: its 429 is relayed.",
    )
    max_in_flight: int = Field(
        64, ge=1, description="Requests sent upstream at once; the rest wait (`max_queue`)."
    )
    passthrough_unknown: bool = Field(
        False, description="Forward fields easel does not know verbatim, instead of refusing them."
    )
    rehost_urls: bool = Field(
        False, description="Download the URLs the upstream returns and serve them from easel's storage."
    )
    family: Literal["gpt-image", "dall-e"] | None = Field(
        None, description="What the upstream returns: `gpt-image` only base64 (easel hosts URLs), "
        "`dall-e` URLs when asked (default: from the model's mirror)."
    )  # fmt: skip
    failure_threshold: int = Field(
        3,
        ge=1,
        description="Consecutive failures after which it is skipped as an overflow or fallback target.",
    )
    skip_seconds: float = Field(30.0, gt=0, description="How long it is skipped, before it is tried again.")
    max_response_bytes: int = Field(
        512 * 1024 * 1024,
        ge=1024,
        description="The largest answer (or stream event) taken from the upstream.",
    )

    @model_validator(mode="after")
    def _one_key_source(self) -> OpenAIOptions:
        if self.api_key_env is not None and self.api_key_file is not None:
            raise ValueError("set api_key_env or api_key_file, not both")
        if not self.send_key and (self.api_key_env is not None or self.api_key_file is not None):
            raise ValueError("send_key = false sends no key: drop api_key_env and api_key_file")
        return self

    def api_key(self, model_id: str) -> str | None:
        """The upstream key, read once at start-up; a BackendConfigError names what is missing."""
        if not self.send_key:
            return None
        if self.api_key_file is not None:
            try:
                key = self.api_key_file.read_text().strip()
            except OSError as exc:
                raise BackendConfigError(
                    f"model {model_id!r}: cannot read api_key_file {str(self.api_key_file)!r} "
                    f"({exc.strerror or exc}); point it at a file holding the upstream key"
                ) from None
            if not key:
                raise BackendConfigError(
                    f"model {model_id!r}: api_key_file {str(self.api_key_file)!r} is empty"
                )
            return key
        name = self.api_key_env or "OPENAI_API_KEY"
        key = os.environ.get(name, "").strip()
        if not key:
            raise BackendConfigError(
                f"model {model_id!r}: the environment variable {name} holding the upstream key is not set; "
                f"export it, or set api_key_env or api_key_file in [models.options]"
            )
        return key
