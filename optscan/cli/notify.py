"""`flask notify test`: send a test message to the configured apprise URLs."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from optscan.cli import EXIT_FAILED, EXIT_USAGE
from optscan.extensions import services
from optscan.notify.hook import send_probe
from optscan.notify.send import AlertFailed, describe


@click.group("notify")
def notify_group() -> None:
    """Alerts on new matches (OPTSCAN_NOTIFY_URLS)."""


@notify_group.command("test")
@with_appcontext
def test_command() -> None:
    """Send a test message to every OPTSCAN_NOTIFY_URLS address; exit 1 when it fails."""
    svc = services()
    urls = svc.settings.notify_urls
    if not urls:
        click.echo("OPTSCAN_NOTIFY_URLS is not set: there is nowhere to send alerts.", err=True)
        sys.exit(EXIT_USAGE)
    where = ", ".join(describe(url) for url in urls)
    try:
        send_probe(svc)
    except AlertFailed as exc:
        click.echo(f"Test message not sent to {where}: {exc}", err=True)
        sys.exit(EXIT_FAILED)
    click.echo(f"Test message sent to {where}.")
