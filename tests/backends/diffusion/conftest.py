"""One `easel serve` that serves every tiny pipeline family (saved once per session: `pipelines`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import Server, model_toml, start_server

#: Model id -> (tiny family, extra TOML lines for its options).
SERVED = {
    # Like sd-turbo: guidance off, so negative prompts are refused.
    "sd": ("sd", "guidance_scale = 0.0"),
    "sd-inpaint": ("sd-inpaint", ""),
    "sdxl": ("sdxl", ""),
    "flux": ("flux", "max_sequence_length = 32"),
}


@pytest.fixture(scope="session")
def diffusers_server(
    tmp_path_factory: pytest.TempPathFactory, pipelines: dict[str, Path]
) -> Iterator[Server]:
    config = "".join(model_toml(mid, pipelines[family], extra) for mid, (family, extra) in SERVED.items())
    config += '\n[[models]]\nid = "placeholder"\n'
    server = start_server(tmp_path_factory.mktemp("diffusers"), config)
    yield server
    server.stop()
