"""Flask blueprints, one per feature."""
