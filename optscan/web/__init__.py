"""The web layer: blueprints, presentation, security headers and error pages."""

from __future__ import annotations

from flask import Flask


def init_app(app: Flask) -> None:
    """Register the blueprints, template helpers and error handlers."""
    from optscan.web import (
        auth,
        errors,
        history,
        positions,
        presentation,
        rowshtml,
        rules,
        scans,
        stream,
        watchlist,
    )

    presentation.init_app(app)
    app.add_template_global(rowshtml.render_rows, "render_rows")
    app.add_template_global(rowshtml.render_group, "render_group")
    errors.init_app(app)
    for blueprint in (
        auth.bp,
        scans.bp,
        rules.bp,
        stream.bp,
        watchlist.bp,
        positions.bp,
        history.bp,
    ):
        app.register_blueprint(blueprint)
