"""Backends resolve by name through the `easel.backends` entry points, built-ins too; options are checked."""

from __future__ import annotations

from pathlib import Path

import pytest

from easel.backends import BackendConfigError, build
from easel.backends.placeholder import PlaceholderBackend, PlaceholderOptions
from easel.backends.registry import UnknownBackendError, available, resolve
from easel.settings import ModelSpec
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


def test_backend_options_are_validated_when_the_backend_is_built() -> None:
    spec = ModelSpec(id="preview", options={"caption": False})
    backend = build(spec)
    assert isinstance(backend, PlaceholderBackend)
    assert backend.options == PlaceholderOptions(caption=False)
    named = "model 'preview': invalid options for backend 'placeholder': captoin: Extra inputs are not"
    with pytest.raises(BackendConfigError, match=named):
        build(ModelSpec(id="preview", options={"captoin": False}))


def test_serve_refuses_a_misspelt_placeholder_option(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="captoin: Extra inputs are not permitted"):
        start_server(tmp_path, '[[models]]\nid = "x"\noptions = { captoin = false }\n')
