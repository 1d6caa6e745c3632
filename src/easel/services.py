"""The one typed Services object: built from the settings by `build_services`, read by api/deps.py."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .backends import AnyBackend, build
from .contract.references import RemotePolicy
from .governance.auth import Authenticator
from .governance.db import Database
from .governance.db.database import sqlite_url
from .governance.gate import Gate
from .governance.keys import StaticKeys
from .governance.keystore import KeyStore
from .governance.ledger import Ledger
from .governance.moderation import Moderator
from .governance.ratelimit import Allowance, RateLimiter
from .imaging import Limits
from .memory import Memory
from .metrics import Metrics
from .scheduler import ModelQueue
from .service import ImageService, ServedModel
from .settings import Settings
from .storage import LocalStorage, Storage


@dataclass(frozen=True)
class Services:
    """Everything the routes use, built once per app."""

    settings: Settings
    service: ImageService
    storage: Storage
    db: Database
    auth: Authenticator
    gate: Gate
    metrics: Metrics
    #: The bytes all requests in progress may hold (`max_buffered_bytes`).
    memory: Memory


def build_storage(settings: Settings) -> Storage:
    """The hosted-image store the settings ask for (a new storage is one more choice here)."""
    if settings.storage == "s3":
        from .storage.s3 import S3Storage, s3_client

        assert settings.s3_bucket is not None
        s3 = S3Storage(
            s3_client(settings.s3_endpoint_url, settings.s3_region),
            settings.s3_bucket,
            settings.s3_prefix,
            settings.url_ttl_seconds,
            presign=settings.s3_presign,
            data_dir=settings.data_dir,
            base_url=settings.base_url,
            secret=settings.url_signing_key,
        )
        s3.check()
        return s3
    return LocalStorage(
        settings.data_dir, settings.url_ttl_seconds, settings.base_url, secret=settings.url_signing_key
    )


def build_services(
    settings: Settings,
    backends: Mapping[str, AnyBackend] | None = None,
    storage: Storage | None = None,
    queues: Mapping[str, ModelQueue] | None = None,
    metrics: Metrics | None = None,
) -> Services:
    """Everything the routes need; `backends` (by any id a model answers) and `storage` replace the
    configured ones, for tests; `queues` (by model id) run models elsewhere (the Ray mode), and
    count on `metrics`."""
    served = []
    for spec in settings.models:
        given = [backends[i] for i in spec.ids if backends and i in backends]
        served.append(ServedModel(spec, given[0] if given else build(spec)))
    storage = storage or build_storage(settings)
    metrics = metrics or Metrics()
    db = Database(settings.database_url or sqlite_url(settings.data_dir))
    db.upgrade()
    auth = Authenticator(StaticKeys(settings.api_keys), StaticKeys(settings.admin_keys), KeyStore(db))
    gate = Gate(
        auth,
        RateLimiter(settings.rate_limit_storage, settings.rate_limit_quantum),
        Ledger(db, records=settings.usage_records),
        Moderator(settings.moderation),
        metrics,
        default=Allowance(settings.default_rpm, settings.default_ipm),
    )
    service = ImageService(
        served,
        settings.default_model_id,
        gate=gate,
        storage=storage,
        limits=Limits(
            max_bytes=settings.max_body_bytes,
            max_pixels=settings.max_image_pixels,
            max_total_pixels=settings.max_request_pixels,
        ),
        remote=RemotePolicy(
            enabled=settings.allow_remote_images,
            timeout=settings.remote_image_timeout,
            max_bytes=settings.max_body_bytes,
        ),
        cpu_workers=settings.cpu_workers,
        timeout=settings.request_timeout_seconds,
        metrics=metrics,
        queues=queues,
    )
    memory = Memory(settings.max_buffered_bytes)
    metrics.buffered.set_function(lambda: memory.used)
    return Services(
        settings=settings,
        service=service,
        storage=storage,
        db=db,
        auth=auth,
        gate=gate,
        metrics=metrics,
        memory=memory,
    )
