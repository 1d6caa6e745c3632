"""The bytes requests in progress hold (bodies as read, images as decoded), bounded across them all."""

from __future__ import annotations

import threading

from . import errors

#: What one decoded pixel may take at most: RGBA, 8 bits a channel (easel decodes to nothing wider).
BYTES_PER_PIXEL = 4


class Memory:
    """One process-wide budget of `limit` bytes. Each request takes a `Hold`, which grows as its
    body is read and its images are about to be decoded, and gives everything back once the
    request has its answer. A request that would pass the budget gets a retryable 503 at once,
    before it reads or decodes more: a burst of large uploads slows clients down, it cannot take
    the server's memory. Thread-safe: decoding reserves from worker threads."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        # Re-entrant: a Hold collected by the garbage collector gives back from whatever runs.
        self._lock = threading.RLock()

    def hold(self) -> Hold:
        return Hold(self)

    def _take(self, nbytes: int) -> None:
        with self._lock:
            if self.used + nbytes > self.limit:
                raise errors.overloaded(
                    f"Requests in progress hold {self.used} of the {self.limit} bytes of bodies and "
                    f"decoded images the server may buffer (max_buffered_bytes); this request needs "
                    f"{nbytes} more. Please retry after a brief wait.",
                    retry_after=1.0,
                )
            self.used += nbytes

    def _give(self, nbytes: int) -> None:
        with self._lock:
            self.used -= nbytes


class Hold:
    """What one request holds of the budget; `release` gives it all back (idempotent), and so
    does collecting it, for a stream whose response never started."""

    def __init__(self, memory: Memory) -> None:
        self._memory = memory
        self.held = 0

    def take(self, nbytes: int) -> None:
        """Reserve `nbytes` more, or raise a 503 (server_overloaded) and hold nothing more."""
        self._memory._take(nbytes)
        self.held += nbytes

    def take_pixels(self, pixels: int) -> None:
        self.take(pixels * BYTES_PER_PIXEL)

    def release(self) -> None:
        held, self.held = self.held, 0
        if held:
            self._memory._give(held)

    __del__ = release
