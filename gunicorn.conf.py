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
# gunicorn's control socket defaults to one path per user, which two instances would share.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")


def post_worker_init(worker):
    """Close open SSE streams on SIGTERM so a restart does not wait out the graceful timeout."""
    import signal

    from optscan.blueprints.stream import bp

    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        bp.close_streams()
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)
