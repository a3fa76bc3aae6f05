"""Integration tests: the ``holdfast`` CLI against real database containers on a real engine."""
