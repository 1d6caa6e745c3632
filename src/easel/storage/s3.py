"""Hosted images in an S3-compatible bucket: presigned GETs, or easel-signed URLs streamed from the bucket."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio.to_thread

from .. import errors
from .base import Download, Storage, StoredImage
from .signing import MEDIA_TYPES, Signer, expiry, new_name

log = logging.getLogger("easel.storage")
#: S3 deletes at most this many keys per call.
DELETE_BATCH = 1000


def s3_client(endpoint_url: str | None, region: str | None) -> Any:
    """A boto3 S3 client on the standard AWS credential chain; a ConfigError when boto3 is missing."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise errors.ConfigError(
            "storage = \"s3\" needs boto3: install it with pip install 'easel-server[s3]'"
        ) from None
    config = Config(signature_version="s3v4", retries={"max_attempts": 3, "mode": "standard"})
    return boto3.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


class S3Storage(Storage):
    """Objects `<prefix><expiry>-<id>.<ext>`, each written whole by one PUT before its URL exists.

    With `presign` (the default) a URL is a presigned GET on the bucket, valid `ttl_seconds`; the
    bucket serves it. Otherwise it is an easel-signed URL (`/files/images/<name>?sig=`) that easel
    answers by reading the object, for buckets that must stay private to the network. Expired
    objects are deleted by `sweep` (or by the bucket's lifecycle rule: docs/scale-out.md).
    """

    def __init__(
        self,
        client: Any,
        bucket: str,
        prefix: str,
        ttl_seconds: int,
        *,
        presign: bool,
        data_dir: Path,
        base_url: str,
        clock: Callable[[], float] = time.time,
        secret: str | None = None,
    ) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix
        self.ttl = ttl_seconds
        self.presign = presign
        self.clock = clock
        self.signer = None if presign else Signer(data_dir, base_url, secret)

    def check(self) -> None:
        """Reach the bucket once at start-up: a ConfigError that names it, and why, if it cannot be."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code", "?")
            why = {"404": "it does not exist", "403": "the credentials may not use it"}.get(
                code, f"error {code}"
            )
            raise errors.ConfigError(
                f"s3_bucket {self.bucket!r}: {why}; create it, or check s3_endpoint_url, s3_region and "
                "the AWS credentials (AWS_ACCESS_KEY_ID and friends)"
            ) from None
        except BotoCoreError as exc:
            raise errors.ConfigError(
                f"s3_bucket {self.bucket!r} cannot be reached ({exc}); check s3_endpoint_url, s3_region and "
                "the AWS credentials"
            ) from None

    async def put(self, data: bytes, fmt: str, origin: str | None = None) -> StoredImage:
        expires = int(self.clock()) + self.ttl
        name = new_name(expires, fmt)
        key = self.prefix + name
        await anyio.to_thread.run_sync(self._put, key, data, MEDIA_TYPES[fmt])
        if self.signer is not None:
            return StoredImage(url=self.signer.url(name, origin), expires_at=expires)
        params = {"Bucket": self.bucket, "Key": key}
        url = self.client.generate_presigned_url("get_object", Params=params, ExpiresIn=self.ttl)
        return StoredImage(url=url, expires_at=expires)

    def _put(self, key: str, data: bytes, media_type: str) -> None:
        """One PUT: S3 makes an object visible only once it is whole. A failure is a retryable 503."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType=media_type,
                                   CacheControl=f"private, max-age={self.ttl}")  # fmt: skip
        except (BotoCoreError, ClientError) as exc:
            log.error("could not write %s to bucket %s: %s", key, self.bucket, exc)
            raise errors.unavailable("The image store could not be written") from None

    async def open(self, name: str, signature: str) -> Download:
        if self.signer is None:  # presigned URLs point at the bucket, not here
            return await super().open(name, signature)
        checked = self.signer.check(name, signature, self.clock())
        data = await anyio.to_thread.run_sync(self._get, self.prefix + name)
        if data is None:
            raise errors.NotFoundError("No such image.", code="not_found")
        return Download(media_type=checked.media_type, expires_at=checked.expires, data=data)

    def _get(self, key: str) -> bytes | None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
        except self.client.exceptions.NoSuchKey:
            return None
        except (BotoCoreError, ClientError) as exc:
            log.error("could not read %s from bucket %s: %s", key, self.bucket, exc)
            raise errors.unavailable("The image store could not be read") from None
        try:
            data: bytes = body.read()
        finally:
            body.close()
        return data

    async def sweep(self) -> int:
        return await anyio.to_thread.run_sync(self._sweep)

    def _sweep(self) -> int:
        now = self.clock()
        expired = []
        for page in self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self.prefix
        ):
            for item in page.get("Contents", ()):
                name = item["Key"][len(self.prefix) :]
                when = expiry(name)
                if when is not None and when <= now:
                    expired.append({"Key": item["Key"]})
        for start in range(0, len(expired), DELETE_BATCH):
            batch = expired[start : start + DELETE_BATCH]
            self.client.delete_objects(Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})
        return len(expired)
