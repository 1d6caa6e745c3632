"""`easel keys` and `easel usage`: manage keys and read usage in the database, no server needed."""

from __future__ import annotations

import functools
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from ..errors import ConfigError
from ..governance.keystore import PERIODS, KeyInfo, KeyNotFoundError, KeySpec, KeyStore
from ..governance.report import BUCKET_LIMITS, GROUPS, WIDTHS, images_usage


@dataclass(frozen=True)
class Where:
    """Where the server's database is, found as `easel serve` finds it: the flags, then EASEL_*
    variables, then the configuration file."""

    config: Path | None
    data_dir: Path | None
    database_url: str | None

    def database(self) -> Any:
        from ..governance.db import Database
        from ..governance.db.database import sqlite_url
        from ..settings import load_settings

        flags = {"data_dir": self.data_dir} if self.data_dir is not None else {}
        try:
            settings = load_settings(self.config, **flags)
        except ConfigError as exc:
            raise click.ClickException(str(exc)) from None
        return Database(self.database_url or settings.database_url or sqlite_url(settings.data_dir))

    def store(self) -> KeyStore:
        return KeyStore(self.database())


def database_options(command: Callable[..., Any]) -> Callable[..., Any]:
    """--config, --data-dir and --database-url, handed to the command as one `where`."""

    @functools.wraps(command)
    def run(
        *args: Any, config: Path | None, data_dir: Path | None, database_url: str | None, **kw: Any
    ) -> Any:
        return command(*args, where=Where(config, data_dir, database_url), **kw)

    options = [
        click.option("--config", type=click.Path(exists=True, dir_okay=False, path_type=Path), default=None,
                     help="The server's TOML configuration (for its database_url and data_dir)."),
        click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="The server's data directory (as `easel serve --data-dir`)."),
        click.option("--database-url", default=None,
                     help="SQLAlchemy URL of the database (overrides the configuration)."),
    ]  # fmt: skip
    for option in reversed(options):
        run = option(run)
    return run


json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")


def _console() -> Console:
    """Rich on a terminal; wide enough not to fold ids when piped."""
    return Console(width=None if sys.stdout.isatty() else 200)


def _guard(action: Callable[[], Any]) -> Any:
    try:
        return action()
    except KeyNotFoundError as exc:
        raise click.ClickException(str(exc)) from None


def _show_secret(info: KeyInfo, secret: str, as_json: bool) -> None:
    if as_json:
        click.echo(json.dumps({**info.to_json(), "secret": secret}))
        return
    err = Console(stderr=True)
    err.print(f"key [bold]{info.id}[/bold] ({info.name or 'no name'}); its secret, shown only now:")
    click.echo(secret)


@click.group()
def keys() -> None:
    """Create, list, revoke and rotate managed API keys."""


@keys.command("create")
@click.option("--name", default="", help="A label for people.")
@click.option("--models", default=None, help="Comma-separated model ids the key may use (default: all).")
@click.option(
    "--rpm", type=click.IntRange(1, 2**31 - 1), default=None, help="Requests per minute, per model."
)
@click.option("--ipm", type=click.IntRange(1, 2**31 - 1), default=None, help="Images per minute, per model.")
@click.option(
    "--budget-images", type=click.IntRange(0, 2**62), default=None, help="Images per budget period."
)
@click.option(
    "--budget-megapixels", type=click.FloatRange(0, 2**62 / 1e6), default=None, help="Megapixels per period."
)
@click.option("--budget-period", type=click.Choice(PERIODS), default="month", help="The budget's period.")
@click.option("--org", default=None, help="Bind the key to this OpenAI-Organization value.")
@click.option("--project", default=None, help="Bind the key to this OpenAI-Project value.")
@click.option("--admin", is_flag=True, help="An admin key: manages keys and reads usage over HTTP.")
@database_options
@json_option
def create(
    name: str,
    models: str | None,
    rpm: int | None,
    ipm: int | None,
    budget_images: int | None,
    budget_megapixels: float | None,
    budget_period: str,
    org: str | None,
    project: str | None,
    admin: bool,
    where: Where,
    as_json: bool,
) -> None:
    """Create a key and print its secret (once: only its hash is stored)."""
    spec = KeySpec(
        name=name,
        admin=admin,
        models=[m.strip() for m in models.split(",") if m.strip()] if models is not None else None,
        org=org,
        project=project,
        rpm=rpm,
        ipm=ipm,
        budget_images=budget_images,
        budget_megapixels=budget_megapixels,
        budget_period=budget_period,  # type: ignore[arg-type]
    )
    info, secret = where.store().create(spec)
    _show_secret(info, secret, as_json)


@keys.command("list")
@click.option("--active", is_flag=True, help="Leave out revoked keys.")
@database_options
@json_option
def list_keys(active: bool, where: Where, as_json: bool) -> None:
    """List keys (never their secrets)."""
    found = where.store().list(include_revoked=not active)
    if as_json:
        click.echo(json.dumps([k.to_json() for k in found]))
        return
    table = Table("id", "name", "key", "scope", "models", "rpm", "ipm", "budget", "created", "state")
    for k in found:
        budget = ", ".join(
            part
            for part in (
                f"{k.budget_images} images" if k.budget_images is not None else "",
                f"{k.budget_megapixels:g} MP" if k.budget_megapixels is not None else "",
            )
            if part
        )
        table.add_row(
            k.id,
            k.name,
            k.hint,
            "admin" if k.admin else "images",
            ",".join(k.models) if k.models is not None else "all",
            str(k.rpm or "-"),
            str(k.ipm or "-"),
            (f"{budget} in total" if k.budget_period == "total" else f"{budget} a {k.budget_period}")
            if budget
            else "-",
            time.strftime("%Y-%m-%d %H:%M", time.gmtime(k.created_at)),
            "active" if k.active else "revoked",
        )
    _console().print(table)


@keys.command("revoke")
@click.argument("key_id")
@database_options
def revoke(key_id: str, where: Where) -> None:
    """Revoke a key: every server sharing the database refuses it from the next request."""
    info = _guard(lambda: where.store().revoke(key_id))
    click.echo(f"revoked {info.id}")


@keys.command("rotate")
@click.argument("key_id")
@database_options
@json_option
def rotate(key_id: str, where: Where, as_json: bool) -> None:
    """Give a key a new secret (printed once); the old secret stops working at once."""
    info, secret = _guard(lambda: where.store().rotate(key_id))
    _show_secret(info, secret, as_json)


@click.command()
@click.option("--since", default="7d", help="How far back: e.g. 90m, 24h, 7d.")
@click.option("--bucket", type=click.Choice(list(WIDTHS)), default="1d", help="Bucket width.")
@click.option("--group-by", default="", help=f"Comma-separated: {', '.join(GROUPS)}.")
@database_options
@json_option
def usage(since: str, bucket: str, group_by: str, where: Where, as_json: bool) -> None:
    """Images usage in time buckets, as the admin usage endpoint reports it."""
    groups = [g.strip() for g in group_by.split(",") if g.strip()]
    for group in groups:
        if group not in GROUPS:
            raise click.BadParameter(f"{group!r} is not one of {', '.join(GROUPS)}", param_hint="--group-by")
    units = {"m": 60, "h": 3600, "d": 86400}
    if not since[:-1].isdigit() or since[-1:] not in units:
        raise click.BadParameter(f"{since!r} is not like 90m, 24h or 7d", param_hint="--since")
    width = WIDTHS[bucket]
    now = int(time.time())
    start = (now - int(since[:-1]) * units[since[-1]]) // width * width
    limit = BUCKET_LIMITS[bucket][1]
    page = images_usage(where.database(), start, now + 1, bucket, groups, limit)
    if as_json:
        click.echo(json.dumps(page))
        return
    table = Table("from (UTC)", *groups, "images", "requests", "refused", "megapixels")
    for b in page["data"]:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(b["start_time"]))
        for r in b["results"]:
            table.add_row(
                when,
                *[str(r[g]) for g in groups],
                str(r["images"]),
                str(r["num_model_requests"]),
                str(r["refused_requests"]),
                f"{r['megapixels']:.2f}",
            )
    _console().print(table)
