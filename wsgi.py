"""Gunicorn entry point: patch for gevent before anything imports sockets, then build the app."""

from gevent import monkey

monkey.patch_all()

from optscan import create_app  # noqa: E402  (must come after patching)

app = create_app()
