"""Gunicorn settings for optscan: gevent workers so SSE streams and scans run side by side."""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gevent"
# Each open browser tab holds one SSE connection, so a worker must hold many at once.
worker_connections = 1000
# gevent workers notify the arbiter from the hub; a blocked hub is a bug worth a restart.
timeout = 30
graceful_timeout = 10
keepalive = 5
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")
