"""The Ray mode's parts without a cluster: its settings, the deployments derived from them, the
shared-state check, the Serve config YAML, Ray's failures as easel's errors, errors that cross
processes whole, and `ray` left unimported outside the Ray mode."""

from __future__ import annotations

import asyncio
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from easel import errors
from easel.cli import cli
from easel.cluster.application import deployment_name, deployments
from easel.cluster.checks import shared_state_problems
from easel.cluster.remote import RemoteQueue
from easel.errors import ConfigError
from easel.jobs import GenerateJob, Render
from easel.metrics import Metrics
from easel.scheduler import Ticket
from easel.settings import Settings, load_settings
from easel.storage.signing import Signer


def settings_of(tmp_path: Path, toml: str) -> Settings:
    path = tmp_path / "easel.toml"
    path.write_text(toml)
    return load_settings(path)


MODELS = """
[[models]]
id = "gpt-image-2.6-sunburst"
max_queue = 8
max_batch_size = 4

[models.ray]
min_replicas = 1
max_replicas = 4
target_ongoing_requests = 3
num_gpus = 1
resources = { a100 = 1 }
max_queued = 16

[[models]]
id = "my model/v2"
"""


def test_the_deployments_follow_the_settings(tmp_path: Path) -> None:
    settings = settings_of(tmp_path, "[ray]\ningress_replicas = 3\ningress_num_cpus = 2\n" + MODELS)
    options = deployments(settings)
    assert list(options) == ["ingress", "model-gpt-image-2.6-sunburst", "model-my-model-v2"]
    assert options["ingress"]["num_replicas"] == 3
    assert options["ingress"]["ray_actor_options"] == {"num_cpus": 2.0}
    big = options["model-gpt-image-2.6-sunburst"]
    assert big["autoscaling_config"] == {"min_replicas": 1, "initial_replicas": 1, "max_replicas": 4,
                                         "target_ongoing_requests": 3.0}  # fmt: skip
    # Its own queue of 8, and one run of up to 4 images from as many requests (one CPU: one run).
    assert big["max_ongoing_requests"] == 8 + 4
    assert big["max_queued_requests"] == 16
    assert big["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 1.0, "resources": {"a100": 1.0}}
    small = options["model-my-model-v2"]
    assert small["num_replicas"] == 1
    assert "autoscaling_config" not in small
    assert deployment_name("my model/v2") == "model-my-model-v2"


@pytest.mark.parametrize(
    ("table", "said"),
    [
        ("min_replicas = 2", "min_replicas needs max_replicas"),
        ("min_replicas = 5\nmax_replicas = 2", "min_replicas 5 is above max_replicas 2"),
        ("max_queued = 0", "max_queued"),
        ("gpus = 1", "models.0.ray.gpus: unknown setting"),
    ],
)
def test_bad_ray_tables_are_refused_by_name(tmp_path: Path, table: str, said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        settings_of(tmp_path, f'[[models]]\nid = "m"\n[models.ray]\n{table}\n')
    assert said in str(caught.value)


def test_shared_state_is_required_past_one_replica_or_node(tmp_path: Path) -> None:
    local = settings_of(tmp_path, "")
    assert shared_state_problems(local, nodes=1) == []
    assert len(shared_state_problems(local, nodes=2)) == 4  # storage, URL signing key, limits, database
    shared = local.model_copy(update={"storage": "s3", "s3_bucket": "b", "rate_limit_storage": "redis://r:6379/0",
                                      "database_url": "postgresql+psycopg://u@h/db"})  # fmt: skip
    assert shared_state_problems(shared, nodes=4) == []


def test_one_url_signing_key_signs_alike_in_every_process(tmp_path: Path) -> None:
    key = "k" * 32
    one, other = Signer(tmp_path / "a", "http://a", key), Signer(tmp_path / "b", "http://b", key)
    assert one.sign("1-x.png") == other.sign("1-x.png")
    assert Signer(tmp_path / "c", "http://c").sign("1-x.png") != one.sign("1-x.png")  # its own file's key
    with pytest.raises(ConfigError, match="url_signing_key"):
        settings_of(tmp_path, 'url_signing_key = "short"\n')


def test_easel_ray_config_prints_the_serve_config_of_the_settings(tmp_path: Path) -> None:
    path = tmp_path / "easel.toml"
    path.write_text('host = "0.0.0.0"\nport = 9000\n' + MODELS)
    printed = CliRunner().invoke(cli, ["ray", "config", "--config", str(path)])
    assert printed.exit_code == 0, printed.output
    config = yaml.safe_load(printed.output)
    assert config["http_options"] == {"host": "0.0.0.0", "port": 9000}
    (app,) = config["applications"]
    assert app["import_path"] == "easel.cluster.application:build_app"
    assert app["args"] == {"config": str(path.resolve())}
    derived = deployments(load_settings(path))
    assert {d.pop("name"): d for d in app["deployments"]} == derived


def queue() -> RemoteQueue:
    class Handle:
        def options(self, **_: Any) -> Handle:
            return self

    return RemoteQueue("m", Handle(), 4, Metrics())  # type: ignore[arg-type]


def mapped(exc: BaseException) -> errors.APIError:
    async def raised() -> Ticket:
        return Ticket(GenerateJob(render=Render("m", 1, 256, 256, "low", "opaque"), prompt="p"), "o",
                      lambda _: b"", deadline=0, request_id="req_1")  # fmt: skip

    ticket = asyncio.run(raised())
    with pytest.raises(errors.APIError) as caught, queue()._mapped(ticket):
        raise exc
    return caught.value


def test_rays_failures_become_easels_errors() -> None:
    from ray import exceptions as ray_errors
    from ray.serve.exceptions import BackPressureError

    full = mapped(BackPressureError(num_queued_requests=3, max_queued_requests=3, retry_after_s=2.5))
    assert full.status == 503
    assert full.code == "server_overloaded"
    assert full.headers["retry-after-ms"] == "2500"
    died = mapped(ray_errors.ActorDiedError())
    assert died.status == 503
    assert "another is starting. Retry it." in died.message
    refusal = errors.BadRequestError("no", param="size")
    task_error: Any = ray_errors.RayTaskError  # untyped in Ray
    assert mapped(task_error("run", "Traceback ...", refusal)) is refusal
    failed = task_error("run", "Traceback ... /srv/easel.py", ValueError("at 10.0.0.7"))
    other = mapped(failed)
    assert isinstance(other, errors.InternalServerError)
    assert "req_1" in other.message
    assert "10.0.0.7" not in other.message
    assert "Traceback" not in other.message
    assert mapped(RuntimeError("cluster gone")).status == 500


@pytest.mark.parametrize(
    "error",
    [
        errors.ModerationBlockedError(("sexual",), "output"),
        errors.RequestTimeoutError(20),
        errors.overloaded("full", 2.0),
        errors.internal("req_9"),
        errors.InsufficientQuotaError("spent"),
        errors.BadRequestError("bad", code="invalid_value", param="size"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_cross_processes_whole(error: errors.APIError) -> None:
    copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes, as Ray ships them
    assert type(copy) is type(error)
    assert (copy.status, copy.content(), copy.headers, str(copy)) == (
        error.status, error.content(), error.headers, str(error))  # fmt: skip


def test_ray_is_imported_only_by_the_ray_mode(tmp_path: Path) -> None:
    code = (
        "import sys\nfrom easel.app import create_app\nfrom easel.cli import cli\n"
        "import easel.cluster.options\ncreate_app()\nassert 'ray' not in sys.modules, 'ray was imported'\n"
    )
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path)}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert done.returncode == 0, done.stderr
