"""easel's own OpenAPI document: request bodies generated from the served models' parameter tables."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from . import errors
from .jobs import Operation
from .service import ServedModel

BINARY = {"type": "string", "format": "binary"}
IMAGE_REF = {
    "type": "object",
    "properties": {
        "image_url": {"type": "string", "description": "A data: URL (or http(s))."},
        "file_id": {"type": "string"},
    },
}
ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}
IMAGES_RESPONSE = {
    "type": "object",
    "required": ["created", "data"],
    "properties": {
        "created": {"type": "integer"},
        "data": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "b64_json": {"type": "string"},
                    "url": {"type": "string"},
                    "revised_prompt": {"type": "string"},
                    "seed": {"type": "integer"},
                },
            },
        },
        "background": {"type": "string"},
        "output_format": {"type": "string"},
        "size": {"type": "string"},
        "quality": {"type": "string"},
        "usage": {"type": "object"},
    },
}
PATHS: dict[str, Operation] = {
    "/v1/images/generations": "generations",
    "/v1/images/edits": "edits",
    "/v1/images/variations": "variations",
}


def _merge(into: dict[str, Any], schema: dict[str, Any]) -> None:
    """Widen `into` so it admits what `schema` admits (the union of the served models)."""
    if "enum" in into and "enum" in schema:
        into["enum"] += [v for v in schema["enum"] if v not in into["enum"]]
    for key, pick in (("minimum", min), ("maximum", max), ("maxLength", max)):
        if key in into and key in schema:
            into[key] = pick(into[key], schema[key])


def _fields(models: Iterable[ServedModel], op: Operation, *, json: bool) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for model in models:
        try:
            model.rules.check_operation(op)
        except errors.APIError:
            continue
        if json and model.rules.profile != "gpt-image":
            continue
        for param in model.rules.params(op, json=json).values():
            schema = param.json_schema()
            if param.name in props:
                _merge(props[param.name], schema)
            else:
                props[param.name] = schema
    return props


def _body(models: list[ServedModel], op: Operation) -> dict[str, Any]:
    content: dict[str, Any] = {}
    form = _fields(models, op, json=False)
    required = ["prompt"] if "prompt" in form else []
    if op == "generations":
        content["application/json"] = {"schema": {"type": "object", "properties": form, "required": required}}
        return {"required": True, "content": content}
    files: dict[str, Any] = {"image": BINARY}
    if op == "edits":
        files |= {"image[]": {"type": "array", "items": BINARY, "maxItems": 16}, "mask": BINARY}
    content["multipart/form-data"] = {
        "schema": {"type": "object", "properties": files | form, "required": [*required, "image"]}
    }
    if op == "edits":
        as_json = _fields(models, op, json=True)
        if as_json:
            content["application/json"] = {
                "schema": {
                    "type": "object",
                    "required": ["images", "prompt"],
                    "properties": {
                        "images": {"type": "array", "minItems": 1, "maxItems": 16, "items": IMAGE_REF},
                        "mask": IMAGE_REF,
                    }
                    | as_json,
                }
            }
    return {"required": True, "content": content}


def install(schema: dict[str, Any], models: Iterable[ServedModel]) -> dict[str, Any]:
    """Add request bodies and OpenAI-shaped responses to FastAPI's generated document."""
    served = list(models)
    for path, op in PATHS.items():
        post = schema["paths"][path]["post"]
        post["requestBody"] = _body(served, op)
        ok: dict[str, Any] = {"application/json": {"schema": IMAGES_RESPONSE}}
        if op != "variations":
            ok["text/event-stream"] = {"schema": {"type": "string"}}
        post["responses"] = {
            "200": {"description": "The images, or a stream of image events.", "content": ok},
            "default": {
                "description": "An OpenAI error envelope.",
                "content": {"application/json": {"schema": ERROR}},
            },
        }
    schema.setdefault("components", {})["securitySchemes"] = {
        "ApiKeyAuth": {"type": "http", "scheme": "bearer"}
    }
    return schema
