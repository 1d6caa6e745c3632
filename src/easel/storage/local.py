"""Hosted images as files under the data directory, behind HMAC-signed URLs that point back at easel."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
import time
from collections.abc import Callable
from pathlib import Path

import anyio.to_thread

from .. import errors
from .base import Download, Storage, StoredImage

#: `<expiry unix time>-<32 hex>.<ext>`: the name carries its own expiry, and the pattern
#: admits no path separators, so a name can never leave the image directory.
NAME = re.compile(r"^(?P<expires>\d{1,12})-(?P<id>[0-9a-f]{32})\.(?P<ext>png|jpeg|webp|gif|svg)$")
TMP_PREFIX = ".tmp-"
TMP_MAX_AGE = 3600
MEDIA_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "svg": "image/svg+xml",
}
ROUTE = "/files/images"


def load_secret(path: Path) -> bytes:
    """The URL-signing secret, created once (mode 0600) so URLs survive restarts."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TMP_PREFIX}{secrets.token_hex(8)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(secrets.token_bytes(32))
    try:
        os.link(tmp, path)  # fails if another process won the race: then use theirs
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes()


class LocalStorage(Storage):
    """Files under `<data_dir>/images`, written under a temporary name and then renamed.

    URLs are `<base>/files/images/<name>?sig=<HMAC>`: `base_url` (the configured public base URL,
    or the bound address), unless a request came through a trusted proxy with its own origin.
    """

    def __init__(
        self, data_dir: Path, ttl_seconds: int, base_url: str, clock: Callable[[], float] = time.time
    ) -> None:
        self.root = data_dir / "images"
        self.root.mkdir(parents=True, exist_ok=True)
        self.ttl = ttl_seconds
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self._secret = load_secret(data_dir / "url-signing.key")

    def sign(self, name: str) -> str:
        mac = hmac.new(self._secret, name.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    async def put(self, data: bytes, fmt: str, origin: str | None = None) -> StoredImage:
        expires = int(self.clock()) + self.ttl
        name = f"{expires}-{secrets.token_hex(16)}.{fmt}"
        await anyio.to_thread.run_sync(self._write, name, data)
        base = origin or self.base_url
        return StoredImage(url=f"{base}{ROUTE}/{name}?sig={self.sign(name)}", expires_at=expires)

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
        match = NAME.match(name)
        if match is None:
            raise errors.NotFoundError("No such image.", code="not_found")
        if not hmac.compare_digest(self.sign(name).encode(), signature.encode()):
            raise errors.PermissionDeniedError("The URL signature is invalid.", code="invalid_signature")
        path = self.root / name
        expires = int(match["expires"])
        if expires <= self.clock():
            path.unlink(missing_ok=True)
            raise errors.GoneError("This image URL has expired.", code="expired")
        if not path.is_file():
            raise errors.NotFoundError("No such image.", code="not_found")
        return Download(media_type=MEDIA_TYPES[match["ext"]], expires_at=expires, path=path)

    async def sweep(self) -> int:
        return await anyio.to_thread.run_sync(self._sweep)

    def _sweep(self) -> int:
        now = self.clock()
        removed = 0
        for entry in os.scandir(self.root):
            match = NAME.match(entry.name)
            stale_tmp = entry.name.startswith(TMP_PREFIX) and (entry.stat().st_mtime < now - TMP_MAX_AGE)
            if stale_tmp or (match is not None and int(match["expires"]) <= now):
                Path(entry.path).unlink(missing_ok=True)
                removed += 1
        return removed
