"""easel: OpenAI's Images API, self-hosted on diffusers models, a placeholder renderer or an upstream API."""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Settings", "__version__", "create_app", "load_settings"]


def __getattr__(name: str) -> object:
    # Keep `import easel` cheap (the CLI imports it): the app and settings load on first use.
    if name == "create_app":
        from .app import create_app

        return create_app
    if name in ("Settings", "load_settings"):
        from . import settings

        return getattr(settings, name)
    raise AttributeError(name)
