"""Gunicorn settings for optscan: gevent workers so SSE streams and scans run side by side."""

import os

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
worker_class = "gevent"
# Each open browser tab holds one SSE connection, so a worker must hold many at once.
# 1,000 streams plus room for page requests on the same worker.
worker_connections = 1200
# gevent workers notify the arbiter from the hub; a blocked hub is a bug worth a restart.
timeout = 30
graceful_timeout = 10
keepalive = 5
# gunicorn's control socket defaults to one path per user, which two instances would share.
control_socket_disable = True
accesslog = "-"
errorlog = "-"
loglevel = os.environ.get("GUNICORN_LOGLEVEL", "info")


def on_starting(server):
    """Refuse to start, with one line and no traceback, when an OPTSCAN_* value is bad."""
    import subprocess
    import sys

    # In a child process: the master must not import the app, which workers import only
    # after patching for gevent. The child prints the line; the master exits with its code.
    checked = subprocess.run([sys.executable, "-m", "optscan.config"], check=False)
    if checked.returncode != 0:
        sys.exit(checked.returncode)


def post_worker_init(worker):
    """Freeze start-up objects for the GC; close SSE streams early on SIGTERM."""
    import gc
    import signal

    services = worker.wsgi.extensions["optscan"]
    # The NYSE calendar takes ~0.4 s to build: build it now, not in the first request.
    services.calendar.load()
    # Likewise load SQLAlchemy and migrate the watchlist now; a database that is down is
    # reported here and again by the requests that need it, which it must not keep from serving.
    try:
        _ = services.watchlist.database
    except Exception:
        worker.log.exception("the watchlist's database is not available")
    # ~144,000 objects survive start-up; a full collection over them took ~75 ms, the
    # page's worst tail latency. Frozen, collections skip them.
    gc.freeze()

    from optscan.web.stream import bp

    previous = signal.getsignal(signal.SIGTERM)

    def on_term(signum, frame):
        try:
            bp.close_streams()
        except Exception:
            worker.log.exception("closing SSE streams on SIGTERM failed")
        if callable(previous):
            previous(signum, frame)

    signal.signal(signal.SIGTERM, on_term)
