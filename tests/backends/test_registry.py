"""Backends resolve by name: built-ins and `easel.backends` entry points alike."""

from __future__ import annotations

from pathlib import Path

import pytest

from easel.backends.placeholder import PlaceholderBackend
from easel.backends.registry import UnknownBackendError, available, resolve
from tests.helpers import start_server


def test_placeholder_resolves() -> None:
    assert resolve("placeholder") is PlaceholderBackend
    assert "placeholder" in available()


def test_unknown_backend_names_the_available_ones() -> None:
    with pytest.raises(UnknownBackendError, match=r"available: .*placeholder"):
        resolve("stable-diffusion-9")


def test_serve_refuses_an_unknown_backend_clearly(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="unknown backend 'nope'"):
        start_server(tmp_path, '[[models]]\nid = "x"\nbackend = "nope"\n')
