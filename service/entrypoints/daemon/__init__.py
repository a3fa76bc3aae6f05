"""``holdfast serve``: the daemon, with its scheduler and its discovery loop."""

from service.entrypoints.daemon.main import run_daemon

__all__ = ["run_daemon"]
