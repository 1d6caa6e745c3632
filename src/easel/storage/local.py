"""Hosted images as files under the data directory, behind HMAC-signed URLs that point back at easel."""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import anyio.to_thread

from .. import errors
from .base import Download, Storage, StoredImage
from .signing import TMP_PREFIX, Signer, expiry, new_name

TMP_MAX_AGE = 3600


class LocalStorage(Storage):
    """Files under `<data_dir>/images`, written under a temporary name and then renamed.

    URLs are `<base>/files/images/<name>?sig=<HMAC>`: `base_url` (the configured public base URL,
    or the bound address), unless a request came through a trusted proxy with its own origin.
    """

    def __init__(
        self,
        data_dir: Path,
        ttl_seconds: int,
        base_url: str,
        clock: Callable[[], float] = time.time,
        secret: str | None = None,
    ) -> None:
        self.root = data_dir / "images"
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl = ttl_seconds
        self.clock = clock
        self.signer = Signer(data_dir, base_url, secret)
        self.sign = self.signer.sign

    async def put(self, data: bytes, fmt: str, origin: str | None = None) -> StoredImage:
        expires = int(self.clock()) + self.ttl
        name = new_name(expires, fmt)
        await anyio.to_thread.run_sync(self._write, name, data)
        return StoredImage(url=self.signer.url(name, origin), expires_at=expires)

    def _write(self, name: str, data: bytes) -> None:
        tmp = self.root / f"{TMP_PREFIX}{secrets.token_hex(8)}"
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.root / name)

    async def open(self, name: str, signature: str) -> Download:
        return self.find(name, signature)

    def find(self, name: str, signature: str) -> Download:
        """The file behind a signed URL: 404 for a bad name, 403 for a bad signature, 410 if expired."""
        path = self.root / name
        try:
            checked = self.signer.check(name, signature, self.clock())
        except errors.GoneError:
            path.unlink(missing_ok=True)
            raise
        if not path.is_file():
            raise errors.NotFoundError("No such image.", code="not_found")
        return Download(media_type=checked.media_type, expires_at=checked.expires, path=path)

    async def sweep(self) -> int:
        return await anyio.to_thread.run_sync(self._sweep)

    def _sweep(self) -> int:
        now = self.clock()
        removed = 0
        for entry in os.scandir(self.root):
            expires = expiry(entry.name)
            stale_tmp = entry.name.startswith(TMP_PREFIX) and (entry.stat().st_mtime < now - TMP_MAX_AGE)
            if stale_tmp or (expires is not None and expires <= now):
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
        return removed
