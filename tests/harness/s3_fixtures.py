"""Pytest fixtures for the S3 target: moto's real HTTP server on 127.0.0.1.

Nothing is patched in-process: boto3 talks HTTP to a ``ThreadedMotoServer`` on a
free loopback port, exactly as it would to MinIO or AWS, reached through
``AWS_ENDPOINT_URL_S3``. The server can be stopped and started again on the same
port to simulate an outage; moto keeps its buckets in process memory, so they
survive the restart. Stopping also cuts the keep-alive connections the server
threads are still serving (werkzeug would otherwise keep answering on them), so
an outage is an outage for pooled connections too. Load with
``pytest_plugins = ["tests.harness.s3_fixtures"]`` or ``-p tests.harness.s3_fixtures``.
"""

from __future__ import annotations

import contextlib
import secrets
import socket
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from moto.server import ThreadedMotoServer

FAKE_ACCESS_KEY = "AKIAHOLDFASTTESTKEY0"
FAKE_SECRET_KEY = "holdfast-test-secret-do-not-leak-0000000"
REGION = "us-east-1"


class MotoEndpoint:
    """A moto S3 server on 127.0.0.1 that can go down and come back on its port."""

    def __init__(self) -> None:
        self.port = 0
        self._server: ThreadedMotoServer | None = None
        self._connections: set[socket.socket] = set()
        self._lock = threading.Lock()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def running(self) -> bool:
        return self._server is not None

    def start(self) -> None:
        """Start (or restart, on the same port) the server; its state is kept."""
        if self._server is not None:
            return
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        server.start()
        self.port = server.get_host_and_port()[1]
        self._track_connections(server)
        self._server = server

    def stop(self) -> None:
        """Stop listening and cut every open connection (in-flight requests fail)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.stop()  # closes the listening socket
        with self._lock:
            connections, self._connections = self._connections, set()
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def _track_connections(self, server: ThreadedMotoServer) -> None:
        wsgi = server._server  # werkzeug's ThreadedWSGIServer (a socketserver)
        assert wsgi is not None
        process_request = wsgi.process_request
        shutdown_request = wsgi.shutdown_request

        def tracking_process(request: Any, client_address: Any) -> None:
            with self._lock:
                self._connections.add(request)
            process_request(request, client_address)

        def tracking_shutdown(request: Any) -> None:
            with self._lock:
                self._connections.discard(request)
            shutdown_request(request)

        wsgi.process_request = tracking_process  # type: ignore[method-assign]
        wsgi.shutdown_request = tracking_shutdown  # type: ignore[method-assign]


def s3_client(endpoint: str, **config: Any) -> Any:
    """A plain boto3 client on the test server (fake credentials, path addressing)."""
    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=FAKE_ACCESS_KEY,
        aws_secret_access_key=FAKE_SECRET_KEY,
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, **config),
    )


def empty_bucket(client: Any, bucket: str) -> None:
    """Abort unfinished uploads and delete every object, then the bucket."""
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket):
        for upload in page.get("Uploads", ()):
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"],
                                          UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys = [{"Key": item["Key"]} for item in page.get("Contents", ())]
        if keys:
            client.delete_objects(Bucket=bucket, Delete={"Objects": keys, "Quiet": True})
    client.delete_bucket(Bucket=bucket)


@pytest.fixture(scope="session")
def moto_server() -> Iterator[MotoEndpoint]:
    server = MotoEndpoint()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_env(moto_server: MotoEndpoint, monkeypatch: pytest.MonkeyPatch) -> MotoEndpoint:
    """The environment boto3's standard chain reads, pointed at the test server."""
    point_boto3_at(monkeypatch, moto_server.endpoint, FAKE_ACCESS_KEY, FAKE_SECRET_KEY)
    return moto_server


def point_boto3_at(monkeypatch: pytest.MonkeyPatch, endpoint: str, access_key: str,
                   secret_key: str, region: str = REGION) -> None:
    """boto3's standard chain with only these credentials and this endpoint: none
    of the machine's own profiles, files or instance metadata."""
    for variable in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_SESSION_TOKEN",
                     "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", region)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", endpoint)
    monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent/holdfast-test/config")
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/holdfast-test/credentials")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
def s3_bucket(s3_env: MotoEndpoint) -> Iterator[str]:
    """A fresh, uniquely named, empty bucket; emptied and deleted afterwards."""
    bucket = f"holdfast-test-{secrets.token_hex(6)}"
    client = s3_client(s3_env.endpoint)
    client.create_bucket(Bucket=bucket)
    try:
        yield bucket
    finally:
        if not s3_env.running:  # a test that stopped the server must not break teardown
            s3_env.start()
        empty_bucket(client, bucket)
