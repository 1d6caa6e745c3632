"""Start-up and command-line failures are one message that names the problem and the fix (issue 14)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.backing import S3_ENV, start_s3
from tests.helpers import Server, free_port, start_server

pytestmark = pytest.mark.slow


def easel(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "easel", *args], capture_output=True, text=True, env=env,
                          cwd=cwd, timeout=timeout)  # fmt: skip


def refused(done: subprocess.CompletedProcess[str]) -> str:
    """The message of a command that failed as it should: non-zero, no traceback."""
    assert done.returncode != 0, done.stdout
    assert "Traceback" not in done.stderr, done.stderr
    return done.stderr


def test_a_port_in_use_is_one_message(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        message = refused(easel("serve", "--port", str(port), "--data-dir", str(tmp_path)))
    assert f"cannot listen on 127.0.0.1:{port}: another process already uses that port" in message
    assert "--port" in message


@pytest.mark.parametrize(
    ("toml", "fragments"),
    [
        ("port = \n", ["easel.toml is not valid TOML", "line 1"]),
        ("portt = 8001\n", ["invalid configuration in", "portt: unknown setting"]),
        ('[[models]]\nid = "x"\nsizez = ["512x512"]\n', ["models.0.sizez: unknown setting"]),
        ('[[models]]\nid = "x"\nsizes = ["big"]\n', ["models.0.sizes: size 'big' is not WIDTHxHEIGHT"]),
        ("port = 99999\n", ["port: Input should be less than or equal to 65535 (got 99999)"]),
        (
            '[[models]]\nid = "x"\nbackend = "openai"\n[models.options]\napi_key_env = "EASEL_NO_KEY"\n',
            ["model 'x': the environment variable EASEL_NO_KEY holding the upstream key is not set"],
        ),
        (
            '[[models]]\nid = "x"\nbackend = "openai"\n[models.options]\nbase_url = "api.openai.com"\n',
            ["model 'x': invalid options for backend 'openai': base_url: String should match pattern"],
        ),
        ('[[models]]\nid = "x"\noverflow = "y"\n', ["model 'x': overflow 'y' is not a served id"]),
        ('storage = "s3"\n', ['storage = "s3" needs s3_bucket = "<bucket name>"']),
        (
            '[[models]]\nid = "x"\naliases = ["z"]\nfallback = "z"\n',
            ["fallback 'z' must be another served model"],
        ),
    ],
)
def test_configuration_errors_name_the_file_and_the_setting(
    tmp_path: Path, toml: str, fragments: list[str]
) -> None:
    config = tmp_path / "easel.toml"
    config.write_text(toml)
    message = refused(easel("serve", "--config", str(config), "--data-dir", str(tmp_path)))
    for fragment in fragments:
        assert fragment in message, message
    assert "FromFile" not in message, "no internal class names"


def test_keys_and_usage_reach_a_server_started_with_data_dir(tmp_path: Path) -> None:
    data = tmp_path / "elsewhere"
    created = easel("keys", "create", "--name", "ci", "--data-dir", str(data), "--json")
    assert created.returncode == 0, created.stderr
    secret = json.loads(created.stdout)["secret"]
    server = start_server(tmp_path, data_dir=data)
    try:
        url = f"{server.url}/v1/images/generations"
        body = {"prompt": "x", "size": "256x256"}
        assert httpx.post(url, json=body, timeout=60).status_code == 401, "the key turned auth on"
        ok = httpx.post(url, json=body, headers={"authorization": f"Bearer {secret}"}, timeout=60)
        assert ok.status_code == 200
    finally:
        server.stop()
    usage = easel("usage", "--data-dir", str(data), "--json")
    assert usage.returncode == 0, usage.stderr
    assert sum(r["images"] for b in json.loads(usage.stdout)["data"] for r in b["results"]) == 1


def test_generate_names_the_file_after_its_format(lenient_server: Server, tmp_path: Path) -> None:
    env = {**os.environ, "OPENAI_BASE_URL": f"{lenient_server.url}/v1", "OPENAI_API_KEY": "sk-x"}
    command = [
        sys.executable,
        "-m",
        "easel",
        "generate",
        "waves",
        "--format",
        "webp",
        "-o",
        str(tmp_path / "x.png"),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert not (tmp_path / "x.png").exists()
    assert (tmp_path / "x.webp").read_bytes()[:4] == b"RIFF"
    assert "writing webp as x.webp" in done.stderr


def test_serving_every_address_warns_about_hosted_urls(tmp_path: Path) -> None:
    port = free_port()
    command = [sys.executable, "-m", "easel", "serve", "--host", "0.0.0.0", "--port", str(port),
               "--allow-open", "--data-dir", str(tmp_path)]  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        assert process.stdout is not None
        lines = []
        for line in process.stdout:
            lines.append(line)
            if "auth:" in line:
                break
        banner = "".join(lines) + process.stdout.readline()
    finally:
        process.terminate()
        process.wait(60)
    assert f"hosted image URLs will start with http://0.0.0.0:{port}" in banner
    assert "public_base_url" in banner


ROOT = Path(__file__).parents[2]
HEAVY = ("torch", "diffusers", "transformers", "accelerate")


def without_heavy_packages(tmp: Path) -> dict[str, str]:
    """An environment whose Python cannot import torch and its family, as after `make serve`."""
    blocker = tmp / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(f"import sys\nsys.modules.update(dict.fromkeys({HEAVY!r}))\n")
    return {"PYTHONPATH": os.pathsep.join([str(blocker), os.environ.get("PYTHONPATH", "")])}


def test_make_serve_installs_no_heavy_package() -> None:
    from importlib.metadata import requires

    core = [r for r in requires("easel-server") or [] if "extra ==" not in r]
    assert core
    assert not [r for r in core if r.startswith(HEAVY)], core
    command = ["make", "--no-print-directory", "-n", "-B", "serve"]
    plan = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "pip install --quiet -e .\n" in plan
    assert "[" not in plan, "no extras"


def test_the_placeholder_serves_without_torch(tmp_path: Path) -> None:
    server = start_server(tmp_path, env=without_heavy_packages(tmp_path))
    try:
        answer = httpx.post(f"{server.url}/v1/images/generations", json={"prompt": "a kite"}, timeout=120)
        assert answer.status_code == 200, answer.text
        assert answer.json()["data"][0]["b64_json"]
    finally:
        server.stop()


def test_a_diffusers_model_without_its_packages_says_how_to_install_them(tmp_path: Path) -> None:
    config = tmp_path / "easel.toml"
    config.write_text(
        f'[[models]]\nid = "sd"\nbackend = "diffusers"\n[models.options]\npath = "{tmp_path}"\n'
    )
    command = [sys.executable, "-m", "easel", "serve", "--config", str(config), "--data-dir", str(tmp_path)]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **without_heavy_packages(tmp_path)}
    message = refused(subprocess.run(command, capture_output=True, text=True, env=env, timeout=120))
    assert "model 'sd': the diffusers backend needs torch, diffusers, transformers" in message, message
    assert "make serve-models" in message


def test_uvicorns_lines_carry_no_terminal_colours(lenient_server: Server) -> None:
    log = lenient_server.log.read_text()
    assert "Started server process" in log
    assert "color_message" not in log
    assert "\\x1b" not in log


def test_a_bucket_that_cannot_be_reached_or_used_is_one_message(tmp_path: Path) -> None:
    config = tmp_path / "easel.toml"
    config.write_text(f'storage = "s3"\ns3_bucket = "b"\ns3_endpoint_url = "http://127.0.0.1:{free_port()}"\n'
                      's3_region = "us-east-1"\n')  # fmt: skip
    env = {**os.environ, "HF_HUB_OFFLINE": "1", **S3_ENV}
    command = [sys.executable, "-m", "easel", "serve", "--config", str(config), "--data-dir", str(tmp_path)]
    message = refused(subprocess.run(command, capture_output=True, text=True, env=env, timeout=120))
    assert "s3_bucket 'b' cannot be reached" in message, message
    s3 = start_s3()
    try:
        config.write_text(f'storage = "s3"\ns3_bucket = "no-such-bucket"\ns3_endpoint_url = "{s3.url}"\n'
                          's3_region = "us-east-1"\n')  # fmt: skip
        message = refused(subprocess.run(command, capture_output=True, text=True, env=env, timeout=120))
    finally:
        s3.stop()
    assert "s3_bucket 'no-such-bucket': it does not exist; create it" in message, message


def test_s3_storage_without_boto3_says_how_to_install_it(tmp_path: Path) -> None:
    config = tmp_path / "easel.toml"
    config.write_text('storage = "s3"\ns3_bucket = "b"\n')
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules.update(dict.fromkeys(['boto3']))\n")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(blocker)}
    command = [sys.executable, "-m", "easel", "serve", "--config", str(config), "--data-dir", str(tmp_path)]
    message = refused(subprocess.run(command, capture_output=True, text=True, env=env, timeout=120))
    assert "pip install 'easel-server[s3]'" in message, message
