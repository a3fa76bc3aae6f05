"""``holdfast serve``: the long-running process behind the HTTP API.

Builds the services once, starts the job runner and serves the FastAPI app with
uvicorn. Discovery, scheduling and crash recovery join here as the daemon grows.
"""

from __future__ import annotations

import logging

import uvicorn

from service.api import create_app
from service.bootstrap import bootstrap
from service.jobs import JobRunner
from service.logs import configure_logging
from service.settings import Settings

logger = logging.getLogger(__name__)


def run_daemon(settings: Settings, host: str | None = None, port: int | None = None) -> None:
    configure_logging(settings.log_level, settings.log_format)
    services = bootstrap(settings)
    jobs = JobRunner(services.catalog, settings.job_workers)
    app = create_app(services, jobs)
    bind_host, bind_port = host or settings.api_host, port or settings.api_port
    logger.info("holdfast serving on http://%s:%d (data in %s)", bind_host, bind_port,
                settings.data_dir)
    try:
        uvicorn.run(app, host=bind_host, port=bind_port, log_config=None, access_log=False)
    finally:
        jobs.shutdown(wait=True)
        services.close()
