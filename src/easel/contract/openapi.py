"""easel's OpenAPI document: request bodies from the served models' tables, responses from responses.py."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ..jobs import Operation
from .responses import SCHEMAS, ImagesResponse, ModelEntry, ModelList
from .rules import ModelRules

BINARY = {"type": "string", "format": "binary"}
IMAGE_REF = {
    "type": "object",
    "properties": {
        "image_url": {"type": "string", "description": "A data: URL (or http(s))."},
        "file_id": {"type": "string"},
    },
}
PATHS: dict[str, Operation] = {
    "/v1/images/generations": "generations",
    "/v1/images/edits": "edits",
    "/v1/images/variations": "variations",
}


def _merge(into: dict[str, Any], schema: dict[str, Any]) -> None:
    """Widen `into` so it admits what `schema` admits (the union of the served models): a bound
    or a list that only one of them has no longer holds."""
    if "enum" in into and "enum" in schema:
        into["enum"] += [v for v in schema["enum"] if v not in into["enum"]]
    elif "enum" in into or "enum" in schema:
        into.pop("enum", None)
        into.setdefault("pattern", schema.get("pattern"))
        if into["pattern"] is None:
            del into["pattern"]
    for key, pick in (("minimum", min), ("maximum", max), ("maxLength", max)):
        if key in into and key in schema:
            into[key] = pick(into[key], schema[key])
        else:
            into.pop(key, None)


def _fields(models: Iterable[ModelRules], op: Operation, *, json: bool) -> dict[str, Any]:
    props: dict[str, Any] = {}
    for rules in models:
        if not rules.serves(op):
            continue
        if json and rules.profile != "gpt-image":
            continue
        for param in rules.params(op, json=json).values():
            schema = param.json_schema()
            if param.name in props:
                _merge(props[param.name], schema)
            else:
                props[param.name] = schema
    return props


def _body(models: list[ModelRules], op: Operation) -> dict[str, Any]:
    content: dict[str, Any] = {}
    form = _fields(models, op, json=False)
    required = ["prompt"] if "prompt" in form else []
    if op == "generations":
        content["application/json"] = {"schema": {"type": "object", "properties": form, "required": required}}
        return {"required": True, "content": content}
    files: dict[str, Any] = {"image": BINARY}
    if op == "edits":
        files |= {
            "image[]": {"type": "array", "items": BINARY, "maxItems": 16},
            "mask": BINARY,
            "markup": BINARY,
        }
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


def _ref(shape: type) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{shape.__name__}"}


def _schemas() -> dict[str, Any]:
    """The response shapes as JSON Schema, each under its own name, from the TypedDicts."""
    from pydantic import TypeAdapter

    out: dict[str, Any] = {}
    for shape in SCHEMAS:
        schema = TypeAdapter(shape).json_schema(ref_template="#/components/schemas/{model}")
        out.update(schema.pop("$defs", {}))
        out[shape.__name__] = schema
    return out


def _answers(ok: dict[str, Any], description: str) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    return {
        "200": {"description": description, "content": ok},
        "default": {"description": "An OpenAI error envelope.", "content": error},
    }


def install(schema: dict[str, Any], models: Iterable[ModelRules]) -> dict[str, Any]:
    """Add request bodies and OpenAI-shaped responses to FastAPI's generated document."""
    served = list(models)
    for path, op in PATHS.items():
        post = schema["paths"][path]["post"]
        post["requestBody"] = _body(served, op)
        ok: dict[str, Any] = {"application/json": {"schema": _ref(ImagesResponse)}}
        if op != "variations":
            ok["text/event-stream"] = {"schema": {"type": "string"}}
        post["responses"] = _answers(ok, "The images, or a stream of image events.")
    listing = {"application/json": {"schema": _ref(ModelList)}}
    schema["paths"]["/v1/models"]["get"]["responses"] = _answers(listing, "The served models.")
    one = {"application/json": {"schema": _ref(ModelEntry)}}
    schema["paths"]["/v1/models/{model_id}"]["get"]["responses"] = _answers(one, "One served model.")
    components = schema.setdefault("components", {})
    components.setdefault("schemas", {}).update(_schemas())
    components["securitySchemes"] = {"ApiKeyAuth": {"type": "http", "scheme": "bearer"}}
    return schema
