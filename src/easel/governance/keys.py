"""API keys: stored only as SHA-256 digests and compared in constant time; masked in messages."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable


def digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def mask(key: str) -> str:
    """OpenAI's masking in 401 messages: a few first characters and the last four."""
    if len(key) <= 8:
        return "*" * len(key)
    head = 6 if len(key) > 12 else 2
    return f"{key[:head]}***{key[-4:]}"


class StaticKeys:
    """The keys named in the configuration (EASEL_API_KEYS); none means auth is off."""

    def __init__(self, keys: Iterable[str]) -> None:
        self._digests = tuple(digest(k) for k in keys if k)

    @property
    def enabled(self) -> bool:
        return bool(self._digests)

    def check(self, presented: str) -> bool:
        """True if `presented` is one of the keys. Every stored digest is compared, so the
        time taken does not depend on which key (if any) matched."""
        probe = digest(presented)
        found = False
        for stored in self._digests:
            found |= hmac.compare_digest(probe, stored)
        return found
