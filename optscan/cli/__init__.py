"""Every `flask` command of optscan, registered on the app by init_app()."""

from __future__ import annotations

from flask import Flask

# Exit codes of the commands, documented in the README.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_MARKET_CLOSED = 3
EXIT_BUSY = 4
EXIT_REDIS = 5


def init_app(app: Flask) -> None:
    """Add the commands to the app's `flask` CLI."""
    from optscan.cli import admin, history, notify, positions, scan, watchlist

    for command in (
        scan.scan_command,
        scan.record_command,
        watchlist.watchlist_group,
        positions.positions_group,
        admin.set_password_command,
        notify.notify_group,
        admin.redis_group,
        history.history_command,
    ):
        app.cli.add_command(command)
