"""schemathesis against easel's own OpenAPI document: no input gets a 5xx from the three endpoints."""

from __future__ import annotations

import re
import tempfile
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from easel.app import create_app
from easel.settings import Settings

pytestmark = pytest.mark.slow

APP = create_app(Settings(data_dir=Path(tempfile.mkdtemp(prefix="easel-st-")), max_body_bytes=2_000_000))
schema = schemathesis.openapi.from_asgi("/openapi.json", APP).include(path_regex="^/v1/images/")
schema.config.generation.update(modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE], deterministic=True)
STATUSES: dict[str, set[int]] = {}


@schema.parametrize()
@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much]
)
def test_no_server_errors(case: schemathesis.Case[Any]) -> None:
    response = case.call_and_validate(checks=[not_a_server_error])
    STATUSES.setdefault(case.path, set()).add(response.status_code)


def test_the_fuzzing_reached_the_handlers() -> None:
    # Runs after the parametrized cases (file order): both successes and 4xx were seen.
    if not STATUSES:
        pytest.skip("run together with test_no_server_errors")
    for path in ("/v1/images/generations", "/v1/images/edits", "/v1/images/variations"):
        codes = STATUSES.get(path, set())
        assert 400 in codes, (path, codes)
    assert 200 in STATUSES["/v1/images/generations"], STATUSES


def test_document_describes_the_three_endpoints() -> None:
    document = APP.openapi()
    for path in ("/v1/images/generations", "/v1/images/edits", "/v1/images/variations"):
        body = document["paths"][path]["post"]["requestBody"]["content"]
        assert body, path
    edit_json = document["paths"]["/v1/images/edits"]["post"]["requestBody"]["content"]["application/json"]
    assert "images" in edit_json["schema"]["properties"]
    size = document["paths"]["/v1/images/generations"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]["properties"]["size"]
    assert "enum" not in size, "the 2.x models take free sizes: a pattern, not a list"
    for example in ("1792x1024", "256x256", "1536x864", "auto"):
        assert re.fullmatch(size["pattern"], example), example


def test_document_has_todays_fields() -> None:
    """CONTRACT §8's fields are in the document, typed as the SDKs send them."""
    document = APP.openapi()
    content = document["paths"]["/v1/images/generations"]["post"]["requestBody"]["content"]
    fields = content["application/json"]["schema"]["properties"]
    assert fields["complexity"]["enum"] == ["low", "medium", "high"]
    assert (fields["frame_count"]["minimum"], fields["frame_count"]["maximum"]) == (2, 16)
    assert "frame_duration_ms" in fields
    assert fields["safety_identifier"]["type"] == "string"
    assert {"gif", "svg"} <= set(fields["output_format"]["enum"])
    assert {"xhigh", "max"} <= set(fields["quality"]["enum"])
    svg = fields["svg"]
    assert svg["type"] == "object"
    assert svg["properties"]["reasoning"]["properties"]["effort"]["enum"][-1] == "max"
    edit = document["paths"]["/v1/images/edits"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert edit["schema"]["properties"]["markup"] == {"type": "string", "format": "binary"}
    response = document["components"]["schemas"]["ImagesResponse"]["properties"]
    assert {"safety_identifier", "svg_usage"} <= set(response)
    entry = document["components"]["schemas"]["ModelEntry"]["properties"]
    assert "shutdown_date" in entry
