"""Where images for `response_format=url` are kept: local files by default, object stores at scale."""

from .base import Download, Storage, StoredImage
from .local import LocalStorage

__all__ = ["Download", "LocalStorage", "Storage", "StoredImage"]
