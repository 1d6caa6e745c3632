"""Names that carry their own expiry, and the HMAC signatures of URLs that point back at easel."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
import secrets
from dataclasses import dataclass
from pathlib import Path

from .. import errors

#: `<expiry unix time>-<32 hex>.<ext>`: the name carries its own expiry, and the pattern
#: admits no path separators, so a name can never leave the image directory (or key prefix).
NAME = re.compile(r"^(?P<expires>\d{1,12})-(?P<id>[0-9a-f]{32})\.(?P<ext>png|jpeg|webp|gif|svg)$")
TMP_PREFIX = ".tmp-"
MEDIA_TYPES = {
    "png": "image/png",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "svg": "image/svg+xml",
}
#: Where easel serves what it signed.
ROUTE = "/files/images"


def new_name(expires: int, fmt: str) -> str:
    return f"{expires}-{secrets.token_hex(16)}.{fmt}"


def expiry(name: str) -> int | None:
    """The expiry a name carries, or None for a name easel did not make."""
    match = NAME.match(name)
    return None if match is None else int(match["expires"])


#: The data directory's URL-signing secret, when `url_signing_key` is not set.
KEY_FILE = "url-signing.key"


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


@dataclass(frozen=True)
class Checked:
    """A name whose signature held: when it expires, and its media type."""

    expires: int
    media_type: str


class Signer:
    """Signs names with the configured secret (or the data directory's) and checks signatures in
    constant time."""

    def __init__(self, data_dir: Path, base_url: str, secret: str | None = None) -> None:
        self._secret = secret.encode() if secret is not None else load_secret(data_dir / KEY_FILE)
        self.base_url = base_url.rstrip("/")

    def sign(self, name: str) -> str:
        mac = hmac.new(self._secret, name.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    def url(self, name: str, origin: str | None) -> str:
        """The absolute URL of `name` on easel: `origin` (a trusted proxy's), else the base URL."""
        return f"{origin or self.base_url}{ROUTE}/{name}?sig={self.sign(name)}"

    def check(self, name: str, signature: str, now: float) -> Checked:
        """404 for a name easel did not make, 403 for a bad signature, 410 once expired."""
        match = NAME.match(name)
        if match is None:
            raise errors.NotFoundError("No such image.", code="not_found")
        if not hmac.compare_digest(self.sign(name).encode(), signature.encode()):
            raise errors.PermissionDeniedError("The URL signature is invalid.", code="invalid_signature")
        expires = int(match["expires"])
        if expires <= now:
            raise errors.GoneError("This image URL has expired.", code="expired")
        return Checked(expires, MEDIA_TYPES[match["ext"]])
