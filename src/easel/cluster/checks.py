"""The start-up check of the Ray mode: state that several ingress replicas or nodes must share."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from ..settings import Settings


def alive_nodes() -> int:
    """The nodes of the Ray cluster this process has joined that are alive."""
    import ray

    nodes: list[dict[str, Any]] = ray.nodes()  # type: ignore[no-untyped-call]
    return sum(1 for node in nodes if node.get("Alive"))


def shared_state_problems(settings: Settings, nodes: int) -> list[str]:
    """What keeps state in one process or on one node, when there is more than one of either."""
    replicas = settings.ray.ingress_replicas
    if replicas <= 1 and nodes <= 1:
        return []
    problems = []
    if settings.storage == "local":
        problems.append(
            'storage = "local" keeps hosted images on one node, where the other replicas cannot serve '
            'them: set storage = "s3" and s3_bucket (any S3-compatible store, with s3_endpoint_url)'
        )
    if settings.rate_limit_storage.startswith("memory"):
        problems.append(
            'rate_limit_storage = "memory://" counts each replica\'s requests apart, so every limit '
            'would be multiplied: set rate_limit_storage = "redis://HOST:6379/0"'
        )
    if settings.url_signing_key is None and (settings.storage == "local" or not settings.s3_presign):
        problems.append(
            "hosted URLs are signed with each node's own url-signing.key: set url_signing_key "
            "(EASEL_URL_SIGNING_KEY) to one secret of 32 characters or more"
        )
    url = settings.database_url
    if url is None or url.startswith("sqlite"):
        problems.append(
            "the key and usage database is SQLite, a file on one node: set database_url = "
            '"postgresql+psycopg://USER:PASSWORD@HOST/DB"'
        )
    return problems


def check_shared_state(settings: Settings, nodes: int) -> None:
    """A ConfigError naming each setting to change, or nothing when the state is shared."""
    problems = shared_state_problems(settings, nodes)
    if problems:
        where = (
            f"{settings.ray.ingress_replicas} ingress replicas" if settings.ray.ingress_replicas > 1 else ""
        )
        where = " and ".join(w for w in (where, f"{nodes} nodes" if nodes > 1 else "") if w)
        raise ConfigError(
            f"the Ray mode with {where} needs state they all share:\n"
            + "\n".join(f"  - {p}" for p in problems)
            + "\nSee docs/scale-out.md."
        )
