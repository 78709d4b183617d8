"""optscan: scan a watchlist for options worth selling."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create and wire the optscan application."""
    # Imported here: domain modules stay cheap to import without Flask.
    from optscan import cli, extensions, web
    from optscan.config import default_config
    from optscan.web import security

    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.config.from_mapping(default_config())
    # A page may stay open all day: its token is tied to the session, not to the hour.
    app.config["WTF_CSRF_TIME_LIMIT"] = None
    # The conventional unprefixed names; OPTSCAN_REDIS_URL and OPTSCAN_DATABASE_URL win.
    for name in ("REDIS_URL", "DATABASE_URL"):
        if os.environ.get(name):
            app.config[name] = os.environ[name]
    app.config.from_prefixed_env("OPTSCAN")
    if test_config is not None:
        app.config.from_mapping(test_config)
    if app.config.get("INSTANCE_PATH"):
        app.instance_path = str(app.config["INSTANCE_PATH"])

    extensions.init_app(app)
    security.init_app(app, extensions.services(app).settings)
    extensions.csrf.init_app(app)
    web.init_app(app)
    cli.init_app(app)
    return app
