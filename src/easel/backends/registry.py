"""Backend name -> class through the `easel.backends` entry points (where the built-ins are registered
too), a backend built from its spec, and started or closed."""

from __future__ import annotations

import functools
from importlib.metadata import EntryPoint, entry_points
from typing import TYPE_CHECKING

import anyio.to_thread

from ..errors import BackendConfigError
from .base import AsyncBackend, Backend
from .relay import AnyBackend, RelayBackend

if TYPE_CHECKING:
    from ..settings import ModelSpec

GROUP = "easel.backends"


class UnknownBackendError(BackendConfigError):
    """No installed backend has this name, or what is registered under it is not a backend."""


@functools.cache
def _registered() -> dict[str, EntryPoint]:
    """Every registered backend by name; two packages claiming one name is a configuration error."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        other = found.get(ep.name)
        if other is not None and other.value != ep.value:
            raise BackendConfigError(
                f"two installed packages register the backend {ep.name!r} ({other.value} and {ep.value}); "
                "uninstall one of them"
            )
        found[ep.name] = ep
    return found


def available() -> list[str]:
    """Every backend name that can be resolved."""
    return sorted(_registered())


def resolve(name: str) -> type[Backend] | type[AsyncBackend] | type[RelayBackend]:
    """The backend class registered under `name` (imported only now: nothing heavy before)."""
    ep = _registered().get(name)
    if ep is None:
        raise UnknownBackendError(f"unknown backend {name!r}; available: {', '.join(available())}")
    cls = ep.load()
    if not (isinstance(cls, type) and issubclass(cls, Backend | AsyncBackend | RelayBackend)):
        raise UnknownBackendError(f"{ep.value} is not an easel Backend, AsyncBackend or RelayBackend")
    return cls


def build(spec: ModelSpec) -> AnyBackend:
    """The backend a model names, its options validated (`BaseBackend.options_of`)."""
    return resolve(spec.backend)(spec)


async def lifecycle(backend: AnyBackend, *, starting: bool) -> None:
    """Start or close a backend: a coroutine on the loop, or a `Backend`'s hook in a thread."""
    if isinstance(backend, AsyncBackend | RelayBackend):
        await (backend.start() if starting else backend.close())
    else:
        await anyio.to_thread.run_sync(backend.start if starting else backend.close)
