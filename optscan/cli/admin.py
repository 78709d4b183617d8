"""Administration: `flask set-password`."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from optscan.cli import EXIT_USAGE
from optscan.extensions import services
from optscan.store.passwords import WeakPassword


@click.command("set-password")
@click.option("--clear", is_flag=True, help="Remove the password: no login is needed again.")
@click.option("--print", "print_only", is_flag=True, help="Print the hash instead of storing it.")
@with_appcontext
def set_password_command(clear: bool, print_only: bool) -> None:
    """Set the password needed to start scans and edit the watchlist."""
    store = services().passwords
    if clear:
        removed = store.clear()
        click.echo("Password removed." if removed else "No password was stored.")
        return
    password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    if print_only:
        from werkzeug.security import generate_password_hash

        if len(password) < 10:
            click.echo("Error: the password must have at least 10 characters.", err=True)
            sys.exit(EXIT_USAGE)
        click.echo(generate_password_hash(password))
        return
    try:
        store.set(password)
    except WeakPassword as exc:
        click.echo(f"Error: {exc}.", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"Password set (hash stored in {store.path}).")
    if services().settings.password_hash:
        click.echo("Note: OPTSCAN_PASSWORD_HASH is set and takes precedence.", err=True)
