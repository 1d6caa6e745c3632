"""JSON-edit image references (`data:` URLs, opt-in public http(s) URLs) turned into uploads."""

from __future__ import annotations

import binascii
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, unquote_to_bytes, urljoin, urlsplit

import anyio
import httpx
import pybase64

from ..errors import BadRequestError
from ..imaging import Upload
from . import messages
from .params import type_name

MAX_IMAGES = 16
MAX_REDIRECTS = 3
#: (host, port) -> the addresses it resolves to. Injected so tests need no DNS.
Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolver(host: str, port: int) -> list[str]:
    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


@dataclass(frozen=True)
class RemotePolicy:
    """Whether and how `image_url`s are fetched; the resolver and transport are injected in tests."""

    enabled: bool
    timeout: float
    max_bytes: int
    resolver: Resolver = system_resolver
    transport: httpx.AsyncBaseTransport | None = None


def is_public(address: str) -> bool:
    """Only globally routable unicast addresses may be fetched: no private, loopback,
    link-local, reserved, multicast or unspecified ones, also when mapped into IPv6."""
    ip = ipaddress.ip_address(address.split("%")[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


async def collect(body: dict[str, Any], policy: RemotePolicy) -> dict[str, list[Upload]]:
    """Pop `images` and `mask` from a JSON edit body and return them as uploads."""
    files: dict[str, list[Upload]] = {}
    images = body.pop("images", None)
    mask = body.pop("mask", None)
    if images is not None:
        if not isinstance(images, list):
            raise messages.invalid_type("images", "an array", type_name(images))
        if not images:
            raise BadRequestError(
                "Invalid 'images': empty array. Expected an array with minimum length 1, "
                "but got an empty array instead.",
                code="empty_array",
                param="images",
            )
        if len(images) > MAX_IMAGES:
            raise messages.array_too_long("images", MAX_IMAGES, len(images))
        files["image"] = [await _reference(ref, f"images[{i}]", policy) for i, ref in enumerate(images)]
    if mask is not None:
        files["mask"] = [await _reference(mask, "mask", policy)]
    return files


async def _reference(ref: Any, param: str, policy: RemotePolicy) -> Upload:
    if not isinstance(ref, dict):
        raise messages.invalid_type(param, "an object", type_name(ref))
    unknown = [k for k in ref if k not in ("image_url", "file_id")]
    if unknown:
        raise messages.unknown_parameter(f"{param}.{unknown[0]}")
    if ref.get("file_id") is not None:
        raise BadRequestError(
            f"Invalid '{param}.file_id': easel has no Files API, so file ids cannot be used. "
            "Send the image as a data: URL in image_url, or as a multipart upload.",
            code="invalid_value",
            param=f"{param}.file_id",
        )
    url = ref.get("image_url")
    if url is None:
        raise messages.missing_required(f"{param}.image_url")
    if not isinstance(url, str):
        raise messages.invalid_type(f"{param}.image_url", "a string", type_name(url))
    if url.startswith("data:"):
        return _data_url(url, param)
    try:
        scheme = urlsplit(url).scheme.lower()
    except ValueError:  # an unclosed IPv6 bracket, say
        scheme = ""
    if scheme not in ("http", "https"):
        raise BadRequestError(
            f"Invalid '{param}.image_url': expected a data: URL or an http(s) URL.",
            code="invalid_image_url",
            param=f"{param}.image_url",
        )
    if not policy.enabled:
        raise BadRequestError(
            f"Invalid '{param}.image_url': this server does not fetch remote images. "
            "Send the image as a data: URL or as a multipart upload.",
            code="invalid_image_url",
            param=f"{param}.image_url",
        )
    return await fetch_image(url, param, policy)


def _data_url(url: str, param: str) -> Upload:
    header, sep, payload = url[5:].partition(",")
    if not sep:
        raise messages.invalid_image(param, "the data URL has no ',' before its data.")
    media, *attrs = header.split(";")
    try:
        data = (
            pybase64.b64decode(payload, validate=True) if "base64" in attrs else (unquote_to_bytes(payload))
        )
    except (binascii.Error, ValueError):
        raise messages.invalid_image(param, "the data URL is not valid base64.") from None
    return Upload(param=param, data=data, content_type=media or None)


async def fetch_image(url: str, param: str, policy: RemotePolicy) -> Upload:
    """GET a public image, re-checking the address at every redirect, with size and time caps.

    The connection goes to the address that was checked, not to whatever the name resolves to
    a moment later (DNS rebinding): the URL is rewritten to it, keeping the Host header and, for
    https, the name the certificate is checked against.
    """
    where = f"{param}.image_url"

    def refuse(why: str) -> BadRequestError:
        return BadRequestError(f"Invalid '{where}': {why}", code="invalid_image_url", param=where)

    try:
        with anyio.fail_after(policy.timeout):
            async with httpx.AsyncClient(
                follow_redirects=False, timeout=policy.timeout, transport=policy.transport
            ) as client:
                for _ in range(MAX_REDIRECTS + 1):
                    try:
                        parts = urlsplit(url)
                        host, port = parts.hostname, parts.port
                    except ValueError:
                        raise refuse("the URL is malformed (check its host and port).") from None
                    if parts.scheme not in ("http", "https") or not host:
                        raise refuse("only http(s) URLs with a host can be fetched.")
                    port = port or (443 if parts.scheme == "https" else 80)
                    addresses = await policy.resolver(host, port)
                    if not addresses or not all(is_public(a) for a in addresses):
                        raise refuse(
                            "the host is not a public address; easel never fetches "
                            "private, loopback or link-local addresses."
                        )
                    request = _pinned(client, url, parts, addresses[0], port)
                    response = await client.send(request, stream=True)
                    try:
                        if response.is_redirect:
                            url = urljoin(url, response.headers.get("location", ""))
                            continue
                        if response.status_code != 200:
                            raise refuse(f"the server answered {response.status_code}.")
                        body = bytearray()
                        async for chunk in response.aiter_bytes():
                            body += chunk
                            if len(body) > policy.max_bytes:
                                raise refuse(f"the image is larger than {policy.max_bytes} bytes.")
                        return Upload(
                            param=param, data=bytes(body), content_type=response.headers.get("content-type")
                        )
                    finally:
                        await response.aclose()
                raise refuse(f"more than {MAX_REDIRECTS} redirects.")
    except TimeoutError:
        raise refuse(f"fetching took longer than {policy.timeout:g} s.") from None
    except (httpx.HTTPError, OSError) as exc:
        raise refuse(f"the image could not be fetched ({type(exc).__name__}).") from None


def _pinned(
    client: httpx.AsyncClient, url: str, parts: SplitResult, address: str, port: int
) -> httpx.Request:
    """A GET of `url` that connects to `address`, as the name was checked to resolve to."""
    target = httpx.URL(url).copy_with(host=address.split("%")[0], port=port)
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    return client.build_request(
        "GET", target, headers={"host": parts.netloc.rsplit("@", 1)[-1]}, extensions=extensions
    )
