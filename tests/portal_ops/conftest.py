"""Fixtures: the portal in-process with the services it calls (tests/portal_harness.py)."""

from portal_harness import clock, portal  # noqa: F401  (pytest fixtures)
