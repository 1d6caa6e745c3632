"""The Storage extension point for hosted images."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass


@dataclass(frozen=True)
class StoredImage:
    """A hosted image a client may fetch: where it is and until when."""

    url: str
    expires_at: int


class Storage(ABC):
    """Keeps encoded images and hands out absolute, signed, expiring URLs for them."""

    @abstractmethod
    async def put(self, data: bytes, fmt: str, base_url: str) -> StoredImage:
        """Store `data` completely, then return its URL; nothing is visible before that."""

    @abstractmethod
    async def sweep(self) -> int:
        """Delete what has expired; return how many objects went."""

    async def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections; called once at shutdown."""
