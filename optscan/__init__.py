"""optscan: scan a watchlist for options worth selling."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from flask import Flask

from optscan import extensions
from optscan.settings import default_config

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create and wire the optscan application."""
    app = Flask(
        __name__,
        instance_relative_config=True,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
    )
    app.config.from_mapping(default_config())
    if os.environ.get("REDIS_URL"):
        app.config["REDIS_URL"] = os.environ["REDIS_URL"]
    app.config.from_prefixed_env("OPTSCAN")
    if test_config is not None:
        app.config.from_mapping(test_config)

    if app.config.get("INSTANCE_PATH"):
        app.instance_path = str(app.config["INSTANCE_PATH"])
    extensions.init_app(app)

    from optscan.blueprints import scans, watchlist

    app.register_blueprint(scans.bp)
    app.register_blueprint(watchlist.bp)
    return app
