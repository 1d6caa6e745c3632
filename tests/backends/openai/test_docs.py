"""The gateway configurations in docs/gateway.md and the README load, and their upstream models build."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from easel.backends.openai import OpenAIBackend
from easel.settings import load_settings
from tests.helpers import ROOT


def examples() -> list[str]:
    text = (ROOT / "docs" / "gateway.md").read_text() + (ROOT / "README.md").read_text()
    return [b for b in re.findall(r"```toml\n(.*?)```", text, re.S) if 'backend = "openai"' in b]


def test_the_docs_show_each_kind_of_upstream() -> None:
    found = examples()
    assert len(found) == 4, "OpenAI, vLLM-Omni/SGLang, a local model overflowing, the README's"
    assert any("send_key = false" in b for b in found)
    assert any("overflow = " in b and "fallback = " in b for b in found)


@pytest.mark.parametrize("example", examples())
def test_example_loads_and_its_upstreams_build(
    example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-docs-example")
    config = tmp_path / "easel.toml"
    config.write_text(example)
    upstreams = [m for m in load_settings(config).models if m.backend == "openai"]
    assert upstreams
    for spec in upstreams:
        backend = OpenAIBackend(spec)  # options validated, the key found
        assert backend.host
