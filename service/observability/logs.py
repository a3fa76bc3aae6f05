"""Logging set-up for the entry points: one event per line, text or JSON.

Only the CLI and the daemon call :func:`configure_logging`; library modules
just use ``logging.getLogger(__name__)`` and pass context (instance, snapshot,
job) through ``extra``. Nothing logged carries a secret: the code never logs
container environments or URLs with credentials.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

_CONTEXT_KEYS = ("instance", "snapshot", "job", "target")


class JsonFormatter(logging.Formatter):
    converter = staticmethod(time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        event: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in _CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                event[key] = value
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return json.dumps(event)


class TextFormatter(logging.Formatter):
    converter = staticmethod(time.gmtime)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        context = " ".join(f"{key}={getattr(record, key)}" for key in _CONTEXT_KEYS
                           if getattr(record, key, None) is not None)
        return f"{line} {context}" if context else line


def configure_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(TextFormatter("%(asctime)sZ %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # httpx logs every request's full URL at INFO: a webhook's or ping's path is its key.
    for noisy in ("urllib3", "docker", "botocore", "boto3", "s3transfer", "apscheduler",
                  "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    # apprise prints its services' URLs, tokens and all, at DEBUG; its warnings
    # reach the log only as the redacted delivery errors AppriseSender makes of
    # them (it reads them from apprise's own per-call capture, not from here).
    apprise = logging.getLogger("apprise")
    apprise.setLevel(logging.WARNING)
    apprise.propagate = False
