"""The curl examples from OpenAI's documentation, verbatim but for the host."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.helpers import Server, decode, mask_png, noisy_png

pytestmark = pytest.mark.slow


def sh(script: str, cwd: Path, server: Server) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", script],
        cwd=cwd,
        text=True,
        capture_output=True,
        timeout=60,
        check=True,
        env={"PATH": "/usr/bin:/bin", "OPENAI_API_KEY": "sk-anything", "EASEL": server.url},
    )


def test_generation_with_url_then_download(lenient_server: Server, tmp_path: Path) -> None:
    out = sh(
        """
curl $EASEL/v1/images/generations \\
  -H "Content-Type: application/json" \\
  -H "Authorization: Bearer $OPENAI_API_KEY" \\
  -d '{
    "model": "dall-e-2",
    "prompt": "A cute baby sea otter",
    "n": 1,
    "size": "1024x1024",
    "response_format": "url"
  }' | jq -r '.data[0].url' > url.txt
curl -s -o otter.png "$(cat url.txt)"
""",
        tmp_path,
        lenient_server,
    )
    assert out.returncode == 0
    assert (tmp_path / "url.txt").read_text().startswith(f"{lenient_server.url}/files/images/")
    assert decode((tmp_path / "otter.png").read_bytes()).size == (1024, 1024)


# The prompt line is OpenAI's documentation example, kept verbatim.
def test_b64_generation_piped_through_jq_and_base64(lenient_server: Server, tmp_path: Path) -> None:
    sh(
        """
curl -X POST "$EASEL/v1/images/generations" \\
    -H "Authorization: Bearer $OPENAI_API_KEY" \\
    -H "Content-type: application/json" \\
    -d '{
        "model": "gpt-image-1",
        "prompt": "A childrens book drawing of a veterinarian using a stethoscope to listen to the heartbeat of a baby otter."
    }' | jq -r '.data[0].b64_json' | base64 --decode > out.png
""",
        tmp_path,
        lenient_server,
    )
    image = decode((tmp_path / "out.png").read_bytes())
    assert image.format == "PNG"
    assert image.size == (1024, 1024)


def test_multipart_edit_with_mask(lenient_server: Server, tmp_path: Path) -> None:
    (tmp_path / "input.png").write_bytes(noisy_png((1024, 1024)))
    (tmp_path / "mask.png").write_bytes(mask_png((1024, 1024), (0, 0, 512, 512)))
    sh(
        """
curl -s -D headers.txt -X POST "$EASEL/v1/images/edits" \\
  -H "Authorization: Bearer $OPENAI_API_KEY" \\
  -F "model=gpt-image-1" \\
  -F image=@input.png \\
  -F mask=@mask.png \\
  -F 'prompt=A sunlit indoor lounge area with a pool containing a flamingo' \\
  | jq -r '.data[0].b64_json' | base64 --decode > lounge.png
""",
        tmp_path,
        lenient_server,
    )
    out = decode((tmp_path / "lounge.png").read_bytes()).convert("RGB")
    original = decode((tmp_path / "input.png").read_bytes()).convert("RGB")
    assert out.crop((512, 512, 1024, 1024)).tobytes() == original.crop((512, 512, 1024, 1024)).tobytes()
    assert out.crop((0, 0, 512, 512)).tobytes() != original.crop((0, 0, 512, 512)).tobytes()
    assert "x-request-id: req_" in (tmp_path / "headers.txt").read_text().lower()


def test_image_list_edit(lenient_server: Server, tmp_path: Path) -> None:
    for name in ("body-lotion.png", "soap.png"):
        (tmp_path / name).write_bytes(noisy_png((256, 256)))
    sh(
        """
curl -s -X POST "$EASEL/v1/images/edits" \\
  -H "Authorization: Bearer $OPENAI_API_KEY" \\
  -F "model=gpt-image-1" \\
  -F "image[]=@body-lotion.png" \\
  -F "image[]=@soap.png" \\
  -F 'prompt=Generate a photorealistic image of a gift basket on a white background' \\
  | jq -r '.data[0].b64_json' | base64 --decode > gift-basket.png
""",
        tmp_path,
        lenient_server,
    )
    assert decode((tmp_path / "gift-basket.png").read_bytes()).size == (256, 256)
