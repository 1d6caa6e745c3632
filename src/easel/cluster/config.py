"""`easel ray config`: the Serve config (YAML) of the same settings, for `serve deploy` or KubeRay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..settings import Settings
from .application import deployments

#: The builder a Serve config imports: it reads the same TOML file and EASEL_* variables.
IMPORT_PATH = "easel.cluster.application:build_app"


def serve_config(settings: Settings, config: Path | None) -> dict[str, Any]:
    """Serve's config schema: the proxy's address, and one application whose deployments carry the
    options easel derives from the settings (edit them there, or in the TOML and print again)."""
    app: dict[str, Any] = {
        "name": settings.ray.app_name,
        "route_prefix": "/",
        "import_path": IMPORT_PATH,
        "args": {"config": str(config.resolve())} if config is not None else {},
        "deployments": [{"name": name, **options} for name, options in deployments(settings).items()],
    }
    return {
        "proxy_location": "EveryNode",
        "http_options": {"host": settings.host, "port": settings.port},
        "applications": [app],
    }


def render(settings: Settings, config: Path | None) -> str:
    import yaml

    heading = (
        "# easel on Ray Serve"
        + (f", from {config}" if config is not None else ", from the embedded defaults")
        + ": deploy with `serve deploy` on a running cluster, or as a KubeRay RayService's\n"
        "# serveConfigV2 (docs/scale-out.md). Every node needs easel-server[ray] installed and the\n"
        "# same configuration file; EASEL_* and AWS_* variables apply in each replica as set there.\n"
    )
    body: str = yaml.safe_dump(serve_config(settings, config), sort_keys=False)
    return heading + body
