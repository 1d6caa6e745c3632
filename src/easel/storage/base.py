"""The Storage extension point for hosted images: store, build the public URL, open for download."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class StoredImage:
    """A hosted image a client may fetch: its absolute URL and until when it is valid."""

    url: str
    expires_at: int


@dataclass(frozen=True)
class Download:
    """A stored image as the files route sends it: a local file, or its bytes."""

    media_type: str
    expires_at: int
    path: Path | None = None
    data: bytes | None = None


class Storage(ABC):
    """Keeps encoded images and hands out absolute, signed, expiring URLs for them.

    A new storage is a subclass (and its settings): the service only calls `put`, the files
    route only `open`, the background sweep only `sweep`.
    """

    @abstractmethod
    async def put(self, data: bytes, fmt: str, origin: str | None = None) -> StoredImage:
        """Store `data` completely, then return its URL; nothing is visible before that.

        `origin` is where the client reached this server (`https://host`, as a trusted proxy
        forwarded it), for storages whose URLs point back at easel; None: the configured base.
        """

    async def open(self, name: str, signature: str) -> Download:
        """The image behind a URL this storage signed, for `GET /files/images/{name}?sig=`:
        404 for an unknown name, 403 for a bad signature, 410 once expired. Storages whose
        URLs point elsewhere (presigned object-store URLs) have nothing to serve here."""
        from ..errors import NotFoundError

        raise NotFoundError("No such image.", code="not_found")

    @abstractmethod
    async def sweep(self) -> int:
        """Delete what has expired; return how many objects went."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called once at shutdown."""
