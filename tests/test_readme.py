"""The README says what is true: its models table is the catalogue, and its quick tour runs."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image

from easel.contract.catalogue import MODELS, OpenAIModel
from tests.helpers import ROOT, Server, mask_png, noisy_png, png

README = (ROOT / "README.md").read_text()


def summary(model: OpenAIModel) -> str | None:
    """A GPT model's strict rules in one line, from the catalogue (DALL·E's lines are prose)."""
    rules = model.rules
    if rules.profile != "gpt-image":
        return None
    parts = ["free sizes (2.x rule)" if rules.size_rule else "three sizes"]
    parts.append("quality low–max" if "max" in rules.qualities else "quality low–high")
    parts += [name for name, has in (("complexity", rules.complexity), ("markup", rules.markup)) if has]
    parts.append("gif, svg" if "gif" in rules.formats else "png, jpeg, webp")
    fidelity = model.input_fidelity
    parts.append("input_fidelity " + " or ".join(fidelity) if fidelity else "no input_fidelity")
    return "; ".join(parts)


def test_the_models_table_is_the_catalogue() -> None:
    table = README.split("<!-- models-table", 1)[1].split("<!-- end of models-table -->", 1)[0]
    rows = [
        [c.strip().strip("`") for c in line.strip("|").split("|")] for line in table.splitlines()[3:] if line
    ]
    assert [r[0] for r in rows] == list(MODELS), "every id of the SDKs' ImageModel list, in order"
    for model_id, family, rules, date in rows:
        model = MODELS[model_id]
        assert family == model.family, model_id
        assert date == (model.shutdown_date or "live"), model_id
        expected = summary(model)
        if expected is not None:
            assert rules == expected, model_id


def tour() -> str:
    section = README.split("## A quick tour", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.S)
    assert found
    return found.group(1)


@pytest.mark.slow
def test_the_quick_tour_runs(lenient_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Verbatim but for the port, with the files it opens made here."""
    (tmp_path / "room.png").write_bytes(noisy_png((1024, 1024)))
    (tmp_path / "mask.png").write_bytes(mask_png((1024, 1024), (300, 300, 700, 700)))
    markup = Image.new("RGBA", (1024, 1024), (0, 0, 0, 0))
    markup.paste((255, 90, 160, 255), (400, 400, 480, 700))
    buf = io.BytesIO()
    markup.save(buf, "PNG")
    (tmp_path / "markup.png").write_bytes(buf.getvalue())
    (tmp_path / "cat.png").write_bytes(png((256, 256)))
    monkeypatch.chdir(tmp_path)
    code = tour().replace("http://127.0.0.1:8000", lenient_server.url)
    assert code != tour(), "the tour names the default base URL"
    exec(compile(code, "README.md quick tour", "exec"), {})  # noqa: S102 - our own README
    assert Image.open(tmp_path / "lighthouse.png").size == (1536, 864)
