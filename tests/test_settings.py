"""Settings: sources and their precedence, defaults, validation, the README's example."""

from __future__ import annotations

from pathlib import Path
from typing import get_args

import pytest
from openai.types import ImageModel
from pydantic import ValidationError

from easel.contract.profiles import Surface
from easel.settings import ModelSpec, Settings, load_settings
from tests.helpers import ROOT


def test_every_setting_has_a_default_and_a_description() -> None:
    for cls in (Settings, ModelSpec):
        for name, field in cls.model_fields.items():
            assert field.description, f"{cls.__name__}.{name} has no description"
            if name != "id":
                assert not field.is_required(), f"{cls.__name__}.{name} has no default"


def test_sources_priority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "easel.toml"
    config.write_text(
        'port = 9001\nhost = "127.0.0.2"\nurl_ttl_seconds = 10\n[[models]]\nid = "sd"\nsizes = ["512x512"]\n'
    )
    monkeypatch.setenv("EASEL_PORT", "9002")
    monkeypatch.setenv("EASEL_API_KEYS", "a, b,,c")
    settings = load_settings(config, host="127.0.0.3")
    assert settings.host == "127.0.0.3"  # flag beats env and file
    assert settings.port == 9002  # env beats file
    assert settings.url_ttl_seconds == 10  # file beats default
    assert settings.api_keys == ["a", "b", "c"]
    assert [m.id for m in settings.models] == ["sd"]
    assert Surface.of(settings.models[0]).default_size == "512x512"


def test_defaults_serve_every_openai_id_from_one_placeholder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("EASEL_API_KEYS", raising=False)
    settings = Settings()
    (only,) = settings.models  # one backend instance, one queue
    assert (only.id, only.backend) == ("gpt-image-2.6-sunburst", "placeholder")
    assert sorted(only.ids) == sorted(get_args(ImageModel)), "every id of the SDK's ImageModel list"
    assert settings.default_model_id == "gpt-image-2.6-sunburst", "the newest live model"
    assert [Surface.of(only, i).mirror.id for i in only.ids] == only.ids, "each id follows its own rules"
    assert settings.host == "127.0.0.1"
    assert settings.is_loopback
    assert not settings.api_keys


@pytest.mark.parametrize(
    "models",
    [
        [],
        [{"id": "a"}, {"id": "a"}],
        [{"id": "a", "sizes": ["big"]}],
        [{"id": "a", "default_size": "640x480"}],
        [{"id": "a", "colour": "red"}],
    ],
)
def test_bad_model_lists_are_refused(models: list[dict[str, object]]) -> None:
    with pytest.raises(ValidationError):
        Settings(models=models)


def test_loopback_detection() -> None:
    assert Settings(host="::1").is_loopback
    assert not Settings(host="0.0.0.0").is_loopback
    assert Settings(host="::1", port=5).base_url == "http://[::1]:5"


def test_the_readme_configuration_example_loads(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    example = readme.split("```toml\n# easel.toml\n", 1)[1].split("```", 1)[0]
    (tmp_path / "easel.toml").write_text(example)
    settings = load_settings(tmp_path / "easel.toml")
    assert [m.id for m in settings.models] == ["gpt-image-1", "dall-e-2", "preview"]
    assert settings.models[2].options == {"caption": False}
    preview = settings.models[2]
    assert (preview.mirrors, preview.aliases) == ("gpt-image-2", ["gpt-image-2-2026-04-21"])
    assert Surface.of(preview).size_rule is not None
