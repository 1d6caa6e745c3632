"""Settings and ModelSpec from a TOML file, EASEL_* variables and CLI flags; the only environment reader."""

from __future__ import annotations

import ipaddress
import os
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from .cluster.options import ModelRaySettings, RaySettings
from .contract.catalogue import MODELS, NEWEST, Profile, SizeRule
from .contract.profiles import Surface, parse_size
from .errors import ConfigError
from .governance.policy import ModerationCategory, ModerationSettings


def default_data_dir() -> Path:
    """`$XDG_DATA_HOME/easel`, else `~/.local/share/easel`."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "easel"


class SizeRuleSettings(BaseModel):
    """Free `WIDTHxHEIGHT` sizes within limits (`size_rule = {...}`), instead of or beside a list."""

    model_config = ConfigDict(extra="forbid")

    multiple: int = Field(16, ge=1, description="Width and height must both be multiples of this.")
    max_aspect: float = Field(3.0, ge=1, description="The longer side over the shorter, at most.")
    max_edge: int = Field(3840, ge=1, description="The longest side, at most, in pixels.")
    min_pixels: int = Field(655_360, ge=1, description="Width times height, at least.")
    max_pixels: int = Field(8_294_400, ge=1, description="Width times height, at most.")

    def rule(self) -> SizeRule:
        return SizeRule(**self.model_dump())


class ModelSpec(BaseModel):
    """One served model: its id (and aliases), the backend that renders it and the rules it follows."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1, description="The model id clients send as `model`.")
    backend: str = Field("placeholder", description="Backend name: `placeholder`, or an entry point.")
    mirrors: str | None = Field(
        None,
        description="The OpenAI model whose rules this id follows (default: its own id if OpenAI has "
        f"it, else the newest live model, {NEWEST}).",
    )
    aliases: list[str] = Field(
        default_factory=list,
        description="More ids this same model answers (one backend, one queue), each following the "
        "rules of the OpenAI model it names.",
    )
    profile: Profile | None = Field(
        None,
        description="Older form of `mirrors`: `gpt-image` mirrors gpt-image-1, `dall-e-2` and "
        "`dall-e-3` themselves.",
    )
    shutdown_date: str | None = Field(
        None,
        pattern=r"^\d{4}-\d{2}-\d{2}$",
        description="The `shutdown_date` /v1/models shows for its ids (default: OpenAI's date for "
        "the retired ones, none for the live).",
    )
    strict: bool = Field(False, description="Reproduce OpenAI exactly instead of the lenient superset.")
    sizes: list[str] | None = Field(
        None, description="Sizes a lenient model accepts (default: its mirror's, plus 256x256 and 512x512)."
    )
    size_rule: SizeRuleSettings | None = Field(
        None, description="Free sizes a lenient model accepts within these limits, beside `sizes`."
    )
    default_size: str | None = Field(None, description="What `size=auto` resolves to.")
    default_quality: str | None = Field(None, description="What `quality=auto` resolves to.")
    owned_by: str = Field("easel", description="The `owned_by` shown in /v1/models.")
    options: dict[str, Any] = Field(default_factory=dict, description="Backend options.")
    max_queue: int = Field(
        64, ge=0, description="Requests that may wait for this model; past it, 503 server_overloaded."
    )
    max_batch_size: int | None = Field(
        None, ge=1, description="Images per pipeline run, from several requests (default: the backend's)."
    )
    batch_window_ms: float = Field(
        10.0, ge=0, description="How long a run waits for compatible requests to fill its batch."
    )
    overflow: str | None = Field(
        None, description="A served id that answers instead of a 503 when this model's queue is full "
        "(or its wait passes `overflow_after_seconds`), if it can serve the request's parameters."
    )  # fmt: skip
    overflow_after_seconds: float | None = Field(
        None, gt=0, description="Overflow already when the estimated wait in the queue is longer than this."
    )
    fallback: str | None = Field(
        None, description="A served id that retries a request this model failed with a 5xx before "
        "anything was sent to the client (never a 4xx or a moderation refusal)."
    )  # fmt: skip
    ray: ModelRaySettings = Field(
        default_factory=ModelRaySettings, description="Its replicas in the Ray mode (`[models.ray]`)."
    )

    @field_validator("sizes")
    @classmethod
    def _sizes_parse(cls, sizes: list[str] | None) -> list[str] | None:
        for size in sizes or []:
            if parse_size(size) is None:
                raise ValueError(f"size {size!r} is not WIDTHxHEIGHT")
        return sizes

    @field_validator("mirrors")
    @classmethod
    def _mirrors_known(cls, mirrors: str | None) -> str | None:
        if mirrors is not None and mirrors not in MODELS:
            raise ValueError(f"mirrors {mirrors!r} is not an OpenAI image model; one of {list(MODELS)}")
        return mirrors

    @model_validator(mode="after")
    def _surface_consistent(self) -> ModelSpec:
        if len(set(self.ids)) != len(self.ids):
            raise ValueError(f"model {self.id!r}: its id and aliases must differ, got {self.ids}")
        for model_id in self.ids:
            Surface.of(self, model_id)  # its default size must be one each id allows
        return self

    @property
    def ids(self) -> list[str]:
        """Every id this model answers: its own, then its aliases."""
        return [self.id, *self.aliases]


def _default_models() -> list[ModelSpec]:
    """Every OpenAI image model id, from one placeholder instance: the newest live one first."""
    return [ModelSpec(id=NEWEST, aliases=[m for m in MODELS if m != NEWEST])]


class Settings(BaseSettings):
    """Everything easel reads from its configuration; every field has a default and a description."""

    model_config = SettingsConfigDict(
        env_prefix="EASEL_", env_nested_delimiter="__", extra="forbid", validate_default=True
    )

    host: str = Field("127.0.0.1", description="Address to bind; loopback unless told otherwise.")
    port: int = Field(8000, ge=0, le=65535, description="TCP port to bind (0 picks a free one).")
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Where hosted images and the URL-signing secret live "
        "(default: $XDG_DATA_HOME/easel, else ~/.local/share/easel).",
    )
    public_base_url: str | None = Field(
        None, description="Base of hosted image URLs, e.g. https://images.example.com."
    )
    trust_proxy: bool = Field(
        False, description="Build URLs from X-Forwarded-Proto/-Host when no public_base_url is set."
    )
    url_ttl_seconds: int = Field(3600, ge=1, description="How long a hosted image URL stays valid.")
    url_signing_key: str | None = Field(
        None, min_length=32, repr=False, description="The secret that signs hosted URLs (default: the data "
        "directory's url-signing.key, made once); the same in every process that answers them."
    )  # fmt: skip
    storage: Literal["local", "s3"] = Field(
        "local", description="Where hosted images are kept: files in the data directory, or an S3 bucket."
    )
    s3_bucket: str | None = Field(None, description='The bucket (storage = "s3").')
    s3_prefix: str = Field("images/", description="The key prefix of hosted images in the bucket.")
    s3_endpoint_url: str | None = Field(
        None, description="An S3-compatible store's endpoint (MinIO, R2, Ceph); default: AWS."
    )
    s3_region: str | None = Field(
        None, description="The bucket's region (default: the AWS credential chain's)."
    )
    s3_presign: bool = Field(
        True, description="Hosted URLs are presigned GETs on the bucket; false: easel-signed URLs that "
        "easel answers from the bucket (for a bucket private to the network)."
    )  # fmt: skip
    sweep_interval_seconds: float = Field(
        60.0, gt=0, description="How often expired hosted images are deleted."
    )
    max_body_bytes: int = Field(
        100 * 1024 * 1024, ge=1024, description="Largest request body accepted (413 above it)."
    )
    max_image_pixels: int = Field(
        40_000_000, ge=1, description="Largest decoded upload (width x height); bombs get a 400."
    )
    max_request_pixels: int = Field(
        100_000_000,
        ge=1,
        description="Most decoded pixels a request's images (with mask and markup) may add up to; 400 above.",
    )
    max_buffered_bytes: int = Field(
        1024 * 1024 * 1024,
        ge=1024,
        description="Most bytes all requests in progress may hold at once: bodies as read, images as "
        "decoded (4 bytes a pixel). A request past it gets a retryable 503; at least max_body_bytes + "
        "4 x max_request_pixels, so that any one request fits.",
    )
    allow_remote_images: bool = Field(
        False, description="Fetch http(s) `image_url`s in JSON edits (never private addresses)."
    )
    remote_image_timeout: float = Field(10.0, gt=0, description="Timeout for one remote fetch, s.")
    api_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Static API keys (EASEL_API_KEYS, comma separated)."
    )
    allow_open: bool = Field(
        False, description="Serve without keys on a non-loopback address (off: refuse to start)."
    )
    default_model: str | None = Field(
        None,
        description="Model used when a generation or edit names none (default: the first model's id); "
        "a variation that names none goes to dall-e-2 when it is served, as OpenAI documented.",
    )
    models: list[ModelSpec] = Field(
        default_factory=_default_models,
        description=f"The served models, as [[models]] tables (default: {NEWEST} on the placeholder "
        "backend, answering every other OpenAI image model id as an alias).",
    )
    cpu_workers: int = Field(
        default_factory=lambda: os.cpu_count() or 1,
        ge=1,
        description="Renders and encodes run at once (default: the CPU count); more only thrash.",
    )
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    request_timeout_seconds: float = Field(
        600.0, gt=0, description="Longest a request may wait and render (504 timeout past it)."
    )
    shutdown_grace_seconds: float = Field(
        30.0, ge=0, description="On SIGTERM, how long running work may finish before easel exits."
    )
    max_header_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest request line and headers, in bytes (431 above it)."
    )
    header_timeout_seconds: float = Field(
        30.0, gt=0, description="Longest a request's line and headers may take to arrive (408 past it)."
    )
    body_timeout_seconds: float = Field(
        60.0,
        gt=0,
        description="Longest a request body may send nothing while easel reads it (then it is cut off).",
    )
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the key and usage database (default: SQLite `easel.db` in the "
        "data dir; PostgreSQL: `postgresql+psycopg://user:password@host/db`).",
    )
    admin_keys: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Keys that manage keys and read usage over HTTP (comma-separated); not for images.",
    )
    rate_limit_storage: str = Field(
        "memory://",
        description="Where rate-limit counters live: `memory://` (this process) or `redis://host:port/db`.",
    )
    rate_limit_quantum: Literal["minute", "second"] = Field(
        "minute",
        description="`second` enforces a per-minute limit as a sixtieth per second (as OpenAI may).",
    )
    default_rpm: int | None = Field(
        None, ge=1, description="Requests per minute per model for keys that set none (and open access)."
    )
    default_ipm: int | None = Field(
        None, ge=1, description="Images per minute per model for keys that set none (and open access)."
    )
    usage_records: bool = Field(True, description="Write a usage row per request to the database.")
    playground: bool = Field(
        True, description="Serve the web playground at /playground (and redirect / to it); false: both 404."
    )
    log_format: Literal["text", "json"] = Field("text", description="Log lines as text or as JSON objects.")
    log_prompts: bool = Field(False, description="Include prompts in the request log lines.")
    moderation: ModerationSettings = Field(
        default_factory=ModerationSettings, description="Prompt moderation (`[moderation]`)."
    )
    ray: RaySettings = Field(default_factory=RaySettings, description="The Ray Serve mode (`[ray]`).")

    @field_validator("api_keys", "admin_keys", mode="before")
    @classmethod
    def _split_keys(cls, value: Any) -> Any:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @model_validator(mode="after")
    def _check_models(self) -> Settings:
        ids = [i for m in self.models for i in m.ids]
        if not ids:
            raise ValueError("at least one model must be served")
        if len(set(ids)) != len(ids):
            raise ValueError(f"model ids must be unique, got {ids}")
        if self.default_model is not None and self.default_model not in ids:
            raise ValueError(f"default_model {self.default_model!r} is not one of {ids}")
        for m in self.models:
            for name, target in (("overflow", m.overflow), ("fallback", m.fallback)):
                if target is not None and target not in ids:
                    raise ValueError(f"model {m.id!r}: {name} {target!r} is not a served id; one of {ids}")
                if target is not None and target in m.ids:
                    raise ValueError(f"model {m.id!r}: {name} {target!r} must be another served model")
            if m.overflow_after_seconds is not None and m.overflow is None:
                raise ValueError(f'model {m.id!r}: overflow_after_seconds needs overflow = "<served id>"')
        if self.storage == "s3" and not self.s3_bucket:
            raise ValueError('storage = "s3" needs s3_bucket = "<bucket name>"')
        one_request = self.max_body_bytes + 4 * self.max_request_pixels
        if self.max_buffered_bytes < one_request:
            raise ValueError(
                f"max_buffered_bytes {self.max_buffered_bytes} cannot hold one request at the limits "
                f"(max_body_bytes + 4 x max_request_pixels = {one_request}): raise it, or lower those"
            )
        return self

    @property
    def default_model_id(self) -> str:
        return self.default_model or self.models[0].id

    @property
    def is_loopback(self) -> bool:
        """Whether `host` only accepts connections from this machine."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def base_url(self) -> str:
        """The public base URL, or the bound address when none is configured."""
        if self.public_base_url:
            return self.public_base_url.rstrip("/")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # CLI flags (init) beat EASEL_* variables, which beat the TOML file.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))


def load_settings(config: Path | None = None, **overrides: Any) -> Settings:
    """Settings from an optional TOML file, the environment and explicit overrides; a ConfigError
    naming the file, the setting and what is wrong with it, never a traceback."""
    where = str(config) if config is not None else "the environment"
    try:
        if config is None:
            return Settings(**overrides)

        class FromFile(Settings):
            model_config = SettingsConfigDict(toml_file=config)

        return FromFile(**overrides)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{where} is not valid TOML: {exc}.") from None
    except OSError as exc:
        raise ConfigError(f"cannot read {where}: {exc.strerror or exc}.") from None
    except ValidationError as exc:
        problems = "\n".join(f"  - {_problem(e)}" for e in exc.errors())
        raise ConfigError(
            f"invalid configuration in {where}:\n{problems}\nEvery setting, its variable and its default: "
            "docs/configuration.md (or `easel config-reference`)."
        ) from None


def _problem(error: Any) -> str:
    """One validation error as a line: the setting's path, then the reason."""
    path = ".".join(str(part) for part in error["loc"]) or "the configuration"
    if error["type"] == "extra_forbidden":
        return f"{path}: unknown setting (check its spelling)"
    message = str(error["msg"]).removeprefix("Value error, ")
    given = error.get("input")
    shown = (
        f" (got {given!r})"
        if isinstance(given, str | int | float | bool) and error["type"] != "value_error"
        else ""
    )
    return f"{path}: {message}{shown}"


def reference(extra: Sequence[tuple[str, type[BaseModel]]] = ()) -> str:
    """The configuration reference (docs/configuration.md), generated from the fields above.

    `extra` adds a section per (heading, options model), for backends' `[models.options]`.
    """
    lines = [
        "# Configuration reference",
        "",
        "Generated by `easel config-reference` from `easel.settings`; a test keeps it current.",
        "Precedence: command-line flags, then `EASEL_*` variables, then the TOML file (`--config`),",
        "then these defaults. Nested values use `__` in variables (`EASEL_MODELS` takes JSON).",
        "",
        "## Server (top level of the TOML file)",
        "",
        "| key | variable | default | meaning |",
        "|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        lines.append(f"| `{name}` | `EASEL_{name.upper()}` | {_shown(field)} | {field.description} |")
    sections: list[tuple[str, type[BaseModel]]] = [
        ("A model (`[[models]]` tables)", ModelSpec),
        ("A size rule (`size_rule = {...}` of a model)", SizeRuleSettings),
        ("Moderation (`[moderation]`)", ModerationSettings),
        ("The Ray Serve mode (`[ray]`)", RaySettings),
        ("A model's replicas in the Ray mode (`[models.ray]`)", ModelRaySettings),
        ('A moderation category (`[moderation.categories."NAME"]`)', ModerationCategory),
        *extra,
    ]
    for heading, model in sections:
        lines += ["", f"## {heading}", "", "| key | default | meaning |", "|---|---|---|"]
        for name, field in model.model_fields.items():
            lines.append(f"| `{name}` | {_shown(field)} | {field.description} |")
    return "\n".join(lines) + "\n"


def _shown(field: Any) -> str:
    if field.is_required():
        return "required"
    if field.default_factory is not None:
        value = field.default_factory()
        if isinstance(value, BaseModel):
            shown = repr(value.model_dump())
            return f"`{shown}`" if len(shown) < 100 else "the section below"
        return f"`{value!r}`" if value in ([], {}) else "computed"
    return f"`{field.default!r}`" if field.default is not None else "none"
