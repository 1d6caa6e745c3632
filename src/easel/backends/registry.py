"""Backend name -> class, resolved lazily; built-ins and the `easel.backends` entry points alike."""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points

from .base import Backend, BackendConfigError

#: Built-in backends, as "module:Class" so nothing heavy is imported until one is used.
BUILTIN: dict[str, str] = {
    "placeholder": "easel.backends.placeholder:PlaceholderBackend",
    "diffusers": "easel.backends.diffusion.backend:DiffusersBackend",
}
GROUP = "easel.backends"


class UnknownBackendError(BackendConfigError):
    """No built-in or installed backend has this name."""


def available() -> list[str]:
    """Every backend name that can be resolved."""
    return sorted(set(BUILTIN) | {ep.name for ep in entry_points(group=GROUP)})


def resolve(name: str) -> type[Backend]:
    """The Backend class registered under `name`."""
    target = BUILTIN.get(name)
    if target is None:
        found = [ep for ep in entry_points(group=GROUP) if ep.name == name]
        if not found:
            raise UnknownBackendError(f"unknown backend {name!r}; available: {', '.join(available())}")
        target = found[0].value
    module_name, _, attr = target.partition(":")
    cls = getattr(importlib.import_module(module_name), attr)
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise UnknownBackendError(f"{target} is not an easel Backend")
    return cls
