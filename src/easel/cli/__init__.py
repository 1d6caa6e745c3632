"""The `easel` command: serve the API, or call it as a client."""

from __future__ import annotations

import click

from .. import __version__
from .admin import keys, usage
from .client import edit, generate, models, vary
from .ray import ray_group
from .serve import serve


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="easel")
def cli() -> None:
    """easel: OpenAI's Images API, self-hosted."""


@cli.command("config-reference")
def config_reference() -> None:
    """Print the configuration reference (every setting, its variable and default)."""
    from ..backends import available, resolve
    from ..settings import reference

    sections = [
        (
            f'Options of the {name} backend (`[models.options]` of a `backend = "{name}"` model)',
            resolve(name).Options,
        )
        for name in available()
    ]
    click.echo(reference(sections), nl=False)


cli.add_command(serve)
cli.add_command(generate)
cli.add_command(edit)
cli.add_command(vary)
cli.add_command(models)
cli.add_command(keys)
cli.add_command(usage)
cli.add_command(ray_group)


def main() -> None:
    cli()
