"""Administration: `flask set-password` and `flask redis status|stop`."""

from __future__ import annotations

import sys
from typing import NoReturn

import click
from flask.cli import with_appcontext
from werkzeug.security import generate_password_hash

from optscan.cli import EXIT_BUSY, EXIT_FAILED, EXIT_USAGE
from optscan.extensions import services
from optscan.store.passwords import WeakPassword, check_strength
from optscan.store.redisserver import EmbeddedRedis


def _fail(message: str, code: int) -> NoReturn:
    click.echo(f"Error: {message}", err=True)
    sys.exit(code)


@click.command("set-password")
@click.option("--clear", is_flag=True, help="Remove the password: no login is needed again.")
@click.option("--print", "print_only", is_flag=True, help="Print the hash instead of storing it.")
@with_appcontext
def set_password_command(clear: bool, print_only: bool) -> None:
    """Set the password needed to start scans and edit the watchlist; ends every login."""
    store = services().passwords
    if clear:
        removed = store.clear()
        click.echo("Password removed." if removed else "No password was stored.")
        return
    password = click.prompt("New password", hide_input=True)
    try:
        # Before asking again: typing a too-short password twice teaches nothing.
        check_strength(password)
    except WeakPassword as exc:
        _fail(f"{exc}; nothing changed.", EXIT_USAGE)
    if click.prompt("Repeat the password", hide_input=True) != password:
        _fail("the two passwords differ; nothing changed.", EXIT_USAGE)
    if print_only:
        click.echo(generate_password_hash(password))
        return
    store.set(password)
    click.echo(f"Password set (hash stored in {store.path}); every existing login has ended.")
    if services().settings.password_hash:
        click.echo("Note: OPTSCAN_PASSWORD_HASH is set and takes precedence.", err=True)


@click.group("redis")
def redis_group() -> None:
    """The embedded Redis server in the instance folder (unused when REDIS_URL is set)."""


def _embedded() -> EmbeddedRedis:
    svc = services()
    if svc.settings.redis_url:
        _fail("REDIS_URL is set: optscan uses that server and runs none of its own.", EXIT_USAGE)
    return EmbeddedRedis(svc.instance_path / "redis")


@redis_group.command("status")
@with_appcontext
def redis_status_command() -> None:
    """Say whether the embedded Redis server runs (exit 0) or not (exit 1)."""
    server = _embedded()
    status = server.status()
    if status is None:
        click.echo(f"The embedded Redis server is not running ({server.directory}).")
        sys.exit(EXIT_FAILED)
    click.echo(
        f"The embedded Redis server is running: pid {status.pid}, up {status.uptime_seconds} s,"
        f" {status.keys} keys, {status.used_memory} of memory,"
        f" {status.other_clients} other clients connected; socket {server.socket_path}."
    )


@redis_group.command("stop")
@click.option("--force", is_flag=True, help="Stop it even while other clients are connected.")
@with_appcontext
def redis_stop_command(force: bool) -> None:
    """Stop the embedded Redis server; its data stays on disk for the next start."""
    server = _embedded()
    status = server.status()
    if status is None:
        click.echo("The embedded Redis server is not running.")
        return
    if status.other_clients and not force:
        # A running gunicorn or scan would lose its Redis mid-way.
        _fail(
            f"{status.other_clients} other clients are connected (a running web app or scan?);"
            " stop them first, or pass --force.",
            EXIT_BUSY,
        )
    pid = server.stop()
    click.echo(
        f"Stopped the embedded Redis server (pid {pid}); its data stays in {server.directory}"
        " and it starts again with the next scan or web app."
    )
