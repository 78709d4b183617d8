"""Gunicorn entry point: patch for gevent before anything imports sockets, then build the app."""

from gevent import monkey

monkey.patch_all()

from gunicorn.errors import AppImportError  # noqa: E402

from optscan import create_app  # noqa: E402  (must come after patching)
from optscan.config import ConfigError  # noqa: E402

try:
    app = create_app()
except ConfigError as exc:
    # gunicorn prints this one line (no traceback) and stops: "App failed to load".
    raise AppImportError(f"Error: {exc.format_message()}") from None
