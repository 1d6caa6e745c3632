"""Local hosted-image storage: atomic writes, signatures, expiry, the sweep, a persistent secret."""

from __future__ import annotations

import os
import time
from pathlib import Path

import anyio
import pytest

from easel import errors
from easel.storage.local import LocalStorage


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def put(storage: LocalStorage, data: bytes = b"png-bytes") -> tuple[str, str]:
    stored = anyio.run(storage.put, data, "png", "http://h")
    path, sig = stored.url.removeprefix("http://h/files/images/").split("?sig=")
    return path, sig


def test_put_then_find(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, 60, "http://h")
    name, sig = put(storage)
    found = storage.find(name, sig)
    assert found.path is not None
    assert found.path.read_bytes() == b"png-bytes"
    assert found.media_type == "image/png"
    assert [p.name for p in storage.root.iterdir()] == [name]  # no temporary left behind


def test_signature_checks(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path, 60, "http://h")
    name, sig = put(storage)
    for bad in ("", sig[:-1], sig[::-1]):
        with pytest.raises(errors.PermissionDeniedError):
            storage.find(name, bad)
    other = LocalStorage(tmp_path / "elsewhere", 60, "http://h")  # another secret signs differently
    assert other.sign(name) != sig


@pytest.mark.parametrize(
    "name", ["../url-signing.key", "x.png", "123-abc.png", "/etc/passwd", "1-" + "a" * 32 + ".bmp"]
)
def test_names_outside_the_pattern_are_404(tmp_path: Path, name: str) -> None:
    storage = LocalStorage(tmp_path, 60, "http://h")
    with pytest.raises(errors.NotFoundError):
        storage.find(name, storage.sign(name))


def test_expiry_and_sweep(tmp_path: Path) -> None:
    clock = Clock()
    storage = LocalStorage(tmp_path, 60, "http://h", clock=clock)
    old, old_sig = put(storage)
    clock.now += 30
    fresh, _ = put(storage)
    stale_tmp = storage.root / ".tmp-leftover"
    stale_tmp.write_bytes(b"half")
    os.utime(stale_tmp, (time.time() - 7200, time.time() - 7200))
    clock.now += 31  # the first has expired, the second has not
    with pytest.raises(errors.GoneError):
        storage.find(old, old_sig)
    assert not (storage.root / old).exists()  # deleted on access
    clock.now += 100
    assert anyio.run(storage.sweep) == 2  # the second one and the stale temporary
    assert list(storage.root.iterdir()) == []
    del fresh


def test_secret_persists_across_restarts(tmp_path: Path) -> None:
    first = LocalStorage(tmp_path, 60, "http://h")
    name, sig = put(first)
    again = LocalStorage(tmp_path, 60, "http://h")
    path = again.find(name, sig).path
    assert path is not None
    assert path.exists()
    assert (tmp_path / "url-signing.key").stat().st_mode & 0o777 == 0o600
