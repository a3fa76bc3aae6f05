"""Logging set-up and Prometheus metrics for the entry points."""
