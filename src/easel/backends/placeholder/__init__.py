"""The weight-free placeholder backend: deterministic pictures for every endpoint, offline."""

from .backend import PlaceholderBackend, PlaceholderOptions

__all__ = ["PlaceholderBackend", "PlaceholderOptions"]
