"""Read a request body within its size limit and parse it as JSON or multipart, or say why not."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import orjson
from fastapi import Request
from starlette.datastructures import UploadFile
from starlette.formparsers import MultiPartException
from starlette.requests import ClientDisconnect

from .. import errors
from ..imaging import Upload
from ..memory import Hold

#: Generous for 16 images plus a mask; each file's own size limit is checked separately.
MAX_FILES = 18
MAX_FIELDS = 64
MAX_FIELD_BYTES = 1024 * 1024
#: `svg[reasoning][effort]`: a form field of a nested object, as the SDKs send one (CONTRACT §8).
BRACKETED = re.compile(r"^(\w+)((?:\[\w+\])+)$")
BAD_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The Images API expects a JSON payload, but what was "
    "sent was not valid JSON. Send the body as JSON with the header Content-Type: application/json.)"
)


@dataclass
class Body:
    """A parsed request: scalar fields, file parts by name, and whether it was a form."""

    fields: dict[str, Any]
    files: dict[str, list[Upload]] = field(default_factory=dict)
    form: bool = False


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def read_limited(request: Request, limit: int, hold: Hold | None = None) -> bytes:
    """The whole body, or a 413 as soon as it passes `limit` (declared or actual); its bytes are
    taken from `hold` before they are read (all the declared length at once), or a 503."""
    too_large = errors.RequestTooLargeError(
        f"Request body too large: the limit is {limit} bytes.", code="request_too_large"
    )
    header = request.headers.get("content-length")
    declared = int(header) if header is not None and header.isdigit() else None
    if declared is not None and declared > limit:
        raise too_large
    if hold is not None and declared is not None:
        hold.take(declared)
    chunks: list[bytes] = []
    size = 0
    try:
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise too_large
            if hold is not None and declared is None:
                hold.take(len(chunk))
            chunks.append(chunk)
    except ClientDisconnect:
        raise errors.ClientGoneError from None
    body = b"".join(chunks)
    request._body = body  # let Starlette's form parser read what we already hold
    return body


async def parse(
    request: Request, limit: int, *, allow_json: bool, allow_form: bool, hold: Hold | None = None
) -> Body:
    kind = media_type(request)
    is_json = kind == "application/json" or kind.endswith("+json")
    is_form = kind == "multipart/form-data"
    if not ((is_json and allow_json) or (is_form and allow_form)):
        expected = " or ".join(
            t for t, ok in (("application/json", allow_json), ("multipart/form-data", allow_form)) if ok
        )
        raise errors.BadRequestError(f"Invalid Content-Type header ({kind or 'none'}), expected {expected}.")
    raw = await read_limited(request, limit, hold)
    if is_json:
        return Body(fields=_json_object(raw))
    return await _form(request)


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise errors.BadRequestError(BAD_JSON) from None
    if not isinstance(value, dict):
        raise errors.BadRequestError('The request body must be a JSON object, like {"prompt": "..."}.')
    return value


async def _form(request: Request) -> Body:
    try:
        form = await request.form(max_files=MAX_FILES, max_fields=MAX_FIELDS, max_part_size=MAX_FIELD_BYTES)
    except MultiPartException as exc:
        raise errors.BadRequestError(f"Could not parse the multipart form: {exc.message}") from None
    body = Body(fields={}, form=True)
    try:
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                body.files.setdefault(name, []).append(
                    Upload(
                        param=name,
                        data=await value.read(),
                        content_type=value.content_type,
                        filename=value.filename,
                    )
                )
            else:
                _put(body.fields, name, value)
    finally:
        await form.close()
    return body


def _put(fields: dict[str, Any], name: str, value: str) -> None:
    """A text field, its bracketed name (`svg[model]`) read as a path into nested objects."""
    found = BRACKETED.match(name)
    if found is None:
        fields[name] = value
        return
    keys = [found[1], *re.findall(r"\[(\w+)\]", found[2])]
    target = fields
    for key in keys[:-1]:
        target = target.setdefault(key, {})
        if not isinstance(target, dict):
            raise errors.BadRequestError(
                f"Invalid form field '{name}': '{key}' was also sent as a plain value.", param=name
            )
    target[keys[-1]] = value
