"""S3 storage on a real S3 API (moto in server mode): presigned URLs, easel-signed URLs read from
the bucket, the sweep, and `easel serve` hosting images there."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import openai
import pytest

from easel import errors
from easel.storage.s3 import S3Storage
from tests.backing import S3, S3_ENV
from tests.helpers import decode, items, start_server


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def storage(s3: S3, tmp_path: Path, clock: Clock, *, presign: bool, prefix: str) -> S3Storage:
    return S3Storage(s3.client(), s3.bucket, prefix, 60, presign=presign, data_dir=tmp_path,
                     base_url="http://easel.example", clock=clock)  # fmt: skip


def test_a_presigned_url_is_the_bucket_s_own_and_valid_for_the_ttl(s3: S3, tmp_path: Path) -> None:
    asyncio.run(_a_presigned_url_is_the_bucket_s_own_and_valid_for_the_ttl(s3, tmp_path))


async def _a_presigned_url_is_the_bucket_s_own_and_valid_for_the_ttl(s3: S3, tmp_path: Path) -> None:
    clock = Clock()
    store = storage(s3, tmp_path, clock, presign=True, prefix="presigned/")
    stored = await store.put(b"\x89PNG-bytes", "png")
    url = urlsplit(stored.url)
    query = parse_qs(url.query)
    assert f"{url.scheme}://{url.netloc}" == s3.url
    assert url.path.startswith(f"/{s3.bucket}/presigned/1800000060-")
    assert query["X-Amz-Expires"] == ["60"]
    assert query["X-Amz-Signature"]
    assert stored.expires_at == 1_800_000_060
    fetched = httpx.get(stored.url)
    assert fetched.status_code == 200
    assert fetched.content == b"\x89PNG-bytes"
    assert fetched.headers["content-type"] == "image/png"
    with pytest.raises(errors.NotFoundError):  # nothing of it is served by easel
        await store.open(url.path.rsplit("/", 1)[1], "x")


def test_easel_signed_urls_are_read_from_the_bucket(s3: S3, tmp_path: Path) -> None:
    asyncio.run(_easel_signed_urls_are_read_from_the_bucket(s3, tmp_path))


async def _easel_signed_urls_are_read_from_the_bucket(s3: S3, tmp_path: Path) -> None:
    clock = Clock()
    store = storage(s3, tmp_path, clock, presign=False, prefix="private/")
    stored = await store.put(b"<svg/>", "svg", origin="https://images.example")
    url = urlsplit(stored.url)
    assert url.netloc == "images.example"
    name, sig = url.path.rsplit("/", 1)[1], parse_qs(url.query)["sig"][0]
    found = await store.open(name, sig)
    assert (found.data, found.media_type) == (b"<svg/>", "image/svg+xml")
    with pytest.raises(errors.PermissionDeniedError):
        await store.open(name, sig[:-1] + ("A" if sig[-1] != "A" else "B"))
    with pytest.raises(errors.NotFoundError):
        await store.open("../../etc/passwd", sig)
    s3.client().delete_object(Bucket=s3.bucket, Key=f"private/{name}")
    with pytest.raises(errors.NotFoundError):
        await store.open(name, sig)
    clock.now += 61
    with pytest.raises(errors.GoneError):
        await store.open(name, sig)


def test_the_sweep_deletes_what_expired_and_nothing_else(s3: S3, tmp_path: Path) -> None:
    asyncio.run(_the_sweep_deletes_what_expired_and_nothing_else(s3, tmp_path))


async def _the_sweep_deletes_what_expired_and_nothing_else(s3: S3, tmp_path: Path) -> None:
    clock = Clock()
    store = storage(s3, tmp_path, clock, presign=True, prefix="swept/")
    for _ in range(3):
        await store.put(b"old", "png")
    clock.now += 30
    fresh = await store.put(b"new", "jpeg")
    s3.client().put_object(Bucket=s3.bucket, Key="swept/not-ours.txt", Body=b"keep")
    clock.now += 31  # the first three are past their 60 s, the fourth is not
    assert await store.sweep() == 3
    left = [k for k in s3.listed() if k.startswith("swept/")]
    assert left == sorted(["swept/not-ours.txt", "swept/" + urlsplit(fresh.url).path.rsplit("/", 1)[1]])


def test_a_failed_write_is_a_retryable_503_and_no_url(s3: S3, tmp_path: Path) -> None:
    store = S3Storage(s3.client(), "no-such-bucket", "x/", 60, presign=True, data_dir=tmp_path,
                      base_url="http://easel.example")  # fmt: skip
    with pytest.raises(errors.ServiceUnavailableError) as refused:
        asyncio.run(store.put(b"png", "png"))
    assert refused.value.message == "The image store could not be written; please retry shortly."
    assert "retry-after" in refused.value.headers


@pytest.mark.parametrize("presign", [True, False])
def test_easel_serve_hosts_images_in_the_bucket(s3: S3, tmp_path: Path, presign: bool) -> None:
    prefix = f"serve-{presign}/"
    config = (f'storage = "s3"\ns3_bucket = "{s3.bucket}"\ns3_prefix = "{prefix}"\n'
              f's3_endpoint_url = "{s3.url}"\ns3_region = "us-east-1"\n'
              f's3_presign = {str(presign).lower()}\n')  # fmt: skip
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    server = start_server(tmp_path / "a", config, env=S3_ENV, data_dir=tmp_path / "data")
    other = start_server(tmp_path / "b", config, env=S3_ENV, data_dir=tmp_path / "data")
    try:
        client = openai.OpenAI(base_url=f"{server.url}/v1", api_key="unused", max_retries=0)
        result = client.images.generate(
            model="dall-e-2", prompt="a kite", size="256x256", response_format="url"
        )
        url = items(result)[0].url or ""
        assert url.startswith(s3.url if presign else server.url)
        fetched = httpx.get(url, timeout=60)
        assert fetched.status_code == 200
        assert decode(fetched.content).size == (256, 256)
        assert [k for k in s3.listed() if k.startswith(prefix)], "the object is in the bucket"
        assert not list((tmp_path / "data" / "images").glob("*.png")), "nothing kept on local disk"
        # Another process sharing the bucket (and the data directory's signing key) serves it too.
        elsewhere = httpx.get(url.replace(server.url, other.url), timeout=60)
        assert elsewhere.status_code == 200
        assert elsewhere.content == fetched.content
    finally:
        server.stop()
        other.stop()
