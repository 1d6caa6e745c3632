"""The Serve application built from the settings: the ingress (easel's app) and a deployment per model."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..backends import RelayBackend, build, resolve
from ..settings import ModelSpec, Settings

if TYPE_CHECKING:
    from ray.serve import Application
    from ray.serve.handle import DeploymentHandle

#: Requests one ingress replica takes at once. Its own limits (memory, queues, rate limits) bound
#: the work: Ray's would answer past it in Ray's own format, which clients must never see.
INGRESS_ONGOING = 100_000
#: Environment variables `easel serve --ray` passes on to the replicas it deploys.
FORWARDED = ("AWS_", "HF_")


def deployment_name(model_id: str) -> str:
    """A model's deployment: `model-` and its id, in the characters Serve's names allow."""
    return "model-" + re.sub(r"[^A-Za-z0-9_.-]", "-", model_id)


def rendered_here(spec: ModelSpec) -> bool:
    """Whether a model gets replicas of its own (a relay to an upstream runs in the ingress)."""
    return not issubclass(resolve(spec.backend), RelayBackend)


def replica_capacity(spec: ModelSpec) -> int:
    """Requests one replica takes at once: its own queue's, and as many as its runs hold."""
    backend = build(spec)  # its options checked now, before anything is deployed
    assert not isinstance(backend, RelayBackend)
    workers = backend.concurrency or spec.ray.workers
    return spec.max_queue + workers * (spec.max_batch_size or backend.default_batch_size)


def deployments(settings: Settings) -> dict[str, dict[str, Any]]:
    """Each deployment's Serve options, by name: the ingress, then a model's per rendered model."""
    ray = settings.ray
    out: dict[str, dict[str, Any]] = {
        "ingress": {
            "num_replicas": ray.ingress_replicas,
            "max_ongoing_requests": INGRESS_ONGOING,
            "ray_actor_options": {"num_cpus": ray.ingress_num_cpus},
        }
    }
    for spec in settings.models:
        if rendered_here(spec):
            out[deployment_name(spec.id)] = {
                **spec.ray.scaling(),
                "max_ongoing_requests": replica_capacity(spec),
                "max_queued_requests": spec.ray.max_queued,
                "ray_actor_options": spec.ray.actor_options(),
            }
    return out


def forwarded_env() -> dict[str, str]:
    """What replicas need from this process's environment that is not a setting: the AWS credential
    chain (S3) and Hugging Face's variables (HF_HUB_OFFLINE, HF_HOME)."""
    return {k: v for k, v in os.environ.items() if k.startswith(FORWARDED)}


def application(settings: Settings, env: Mapping[str, str] | None = None) -> Application:
    """The Serve application: the ingress, bound to a handle on each model's deployment; `env` is
    set in every replica."""
    from ray import serve

    from .replica import ModelReplica

    options = deployments(settings)
    if env:
        for deployment in options.values():
            deployment["ray_actor_options"]["runtime_env"] = {"env_vars": dict(env)}
    models, capacities = {}, {}
    for spec in settings.models:
        if rendered_here(spec):
            name = deployment_name(spec.id)
            replica = serve.deployment(name=name, **options[name])(ModelReplica)
            models[spec.id] = replica.bind(
                spec.model_dump(mode="json"), settings.log_level, settings.log_format
            )
            # What the model takes at once across its replicas and Ray's queue (past it, a 503).
            capacities[spec.id] = spec.ray.most * options[name]["max_ongoing_requests"] + spec.ray.max_queued
    ingress = serve.deployment(name="ingress", **options["ingress"])(serve.ingress()(Ingress))
    return ingress.bind(settings.model_dump(mode="json"), models, capacities)


def build_app(args: dict[str, Any]) -> Application:
    """The builder a Serve config names (`easel ray config`): `args["config"]` is the TOML file,
    read with the EASEL_* variables of the process that builds it."""
    from ..settings import load_settings
    from .checks import alive_nodes, check_shared_state

    settings = load_settings(Path(args["config"]) if args.get("config") else None)
    check_shared_state(settings, alive_nodes())
    return application(settings)


class Ingress:
    """easel's own app in a Serve replica: auth, validation, limits, usage, storage and the SSE
    framing, with each rendered model's queue being its deployment (`RemoteQueue`)."""

    def __init__(
        self,
        settings: dict[str, Any],
        models: Mapping[str, DeploymentHandle[Any]],
        capacities: dict[str, int],
    ) -> None:
        self.settings = Settings(**settings)
        self.models = dict(models)
        self.capacities = capacities

    def __serve_build_asgi_app__(self) -> object:
        from ray import serve

        from .. import logs
        from ..app import create_app
        from ..metrics import Metrics
        from ..services import build_services
        from .remote import RemoteQueue

        settings = self.settings
        logs.configure(settings.log_level, settings.log_format)
        metrics = Metrics()
        queues = {
            model_id: RemoteQueue(model_id, handle, self.capacities[model_id], metrics)
            for model_id, handle in self.models.items()
        }
        services = build_services(settings, queues=queues, metrics=metrics)
        replica = serve.get_replica_context().replica_id.unique_id
        return create_app(settings, services=services, proxy_request_id=True, replica=replica)
