"""`easel ray config`: print the Serve config YAML of a configuration (the Ray mode's deployment path)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ConfigError
from ..settings import load_settings


@click.group("ray")
def ray_group() -> None:
    """The Ray Serve mode: see also `easel serve --ray`."""


@ray_group.command("config")
@click.option(
    "--config",
    "config",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    default=None,
    help="The TOML configuration file the cluster will read.",
)
def config_command(config: Path | None) -> None:
    """Print the Serve config YAML for these settings (`serve deploy`, or KubeRay's serveConfigV2)."""
    from ..cluster.config import render

    try:
        settings = load_settings(config)
        click.echo(render(settings, config), nl=False)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
