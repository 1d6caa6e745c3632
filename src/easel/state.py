"""The one typed Services object that create_app builds and api/deps.py hands to the routes."""

from __future__ import annotations

from dataclasses import dataclass

from .access import Authenticator
from .db import Database
from .gate import Gate
from .metrics import Metrics
from .service import ImageService
from .settings import Settings
from .sources import RemotePolicy
from .storage import LocalStorage


@dataclass(frozen=True)
class Services:
    settings: Settings
    service: ImageService
    storage: LocalStorage
    db: Database
    auth: Authenticator
    gate: Gate
    remote: RemotePolicy
    metrics: Metrics
