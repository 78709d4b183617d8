"""Alerts: after a completed scan, one message on its new matches, through apprise URLs."""
