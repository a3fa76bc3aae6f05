"""The CLI's operations against a remote daemon, through its HTTP API (httpx).

:class:`RemoteBackend` has the methods of the CLI's backend
(:class:`service.entrypoints.cli.backend.HoldfastBackend`) and answers the
API's JSON, which the CLI formats exactly as it formats local results. Long
jobs (backup, restore, clone) are started with a fresh ``Idempotency-Key``, so
the one retry of a start whose answer was lost returns the same job and never
starts a second one; their progress comes from ``GET /v1/jobs/{id}/events``
(polling ``GET /v1/jobs/{id}`` if the stream is refused or breaks), and a
Ctrl-C while following cancels the job (``DELETE /v1/jobs/{id}``).

Timeouts are bounded: 10 s to connect, :data:`READ_TIMEOUT` per answer (the
event stream has keep-alive pings every 15 s, so a silent minute means a dead
server). The token travels only in the ``Authorization`` header: no message,
log line or exception here carries it.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import AbstractContextManager
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import SSEError, connect_sse

from backup import errors
from service.adapters.api_client.errors import (
    ErrorClasses,
    ServerUnreachable,
    StatusClasses,
    UnexpectedAnswer,
    error_from_answer,
    error_of,
)

Json = dict[str, Any]
ProgressCallback = Callable[[int, float], None]
Follow = AbstractContextManager[Any]
"""A progress display entered while a job is followed (and called with its bytes)."""

CONNECT_TIMEOUT = 10.0
READ_TIMEOUT = 60.0
"""Seconds an answer (or, on an event stream, the next ping) may take."""
SLOW_READ_TIMEOUT = 900.0
"""For the calls that do their work in the request: volume sizes, target probes,
a catalog rebuild, an undo of a replace (which waits for the database)."""
POLL_SECONDS = 1.0
CANCEL_TIMEOUT = 15.0


class JobInterrupted(KeyboardInterrupt):
    """Ctrl-C while following a remote job; the job was asked to cancel."""


def seg(value: str) -> str:
    """``value`` as one path segment."""
    return quote(value, safe="")


class RemoteBackend:
    """The CLI's backend over ``client`` (an httpx client whose base URL is the
    daemon's and which sends the token). ``classes`` and ``by_status`` map an
    error answer back to its class (:mod:`.errors`)."""

    def __init__(self, client: httpx.Client, server: str, classes: ErrorClasses,
                 by_status: StatusClasses) -> None:
        self._client = client
        self._server = server
        self._classes = classes
        self._by_status = by_status

    # --- HTTP ------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, json: Any = None,
              params: Mapping[str, Any] | list[tuple[str, Any]] | None = None,
              headers: Mapping[str, str] | None = None, read: float = READ_TIMEOUT,
              retry: bool = False) -> Any:
        """The decoded answer of one request (None for 204); a failure raises the
        error it stands for. ``retry``: once more if the connection broke after
        the request went out (only for requests an idempotency key makes safe)."""
        timeout = httpx.Timeout(read, connect=CONNECT_TIMEOUT)
        for attempt in (1, 2):
            try:
                response = self._client.request(method, path, json=json, params=params,
                                                headers=headers, timeout=timeout)
                break
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                if not retry or attempt == 2:
                    raise self._unreachable(exc) from None
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from None
        return self._decoded(response)

    def _decoded(self, response: httpx.Response) -> Any:
        if response.status_code == 204:
            return None
        try:
            body = response.json()
        except ValueError:
            body = None
        if response.is_success:
            if body is None:
                raise UnexpectedAnswer(f"{self._server} answered HTTP {response.status_code} "
                                       "that is not JSON: is --server the daemon's address?")
            return body
        raise error_from_answer(response.status_code, body, self._classes, self._by_status,
                                self._server)

    def _unreachable(self, exc: httpx.HTTPError) -> errors.HoldfastError:
        if isinstance(exc, httpx.TimeoutException):
            what = "did not answer in time"
        elif isinstance(exc, httpx.ConnectError):
            what = "cannot be reached (connection refused or no route)"
        elif isinstance(exc, httpx.TransportError):
            what = "broke the connection"
        else:
            return UnexpectedAnswer(f"request to {self._server} failed: {type(exc).__name__}")
        return ServerUnreachable(f"the Holdfast server {self._server} {what}; check --server "
                                 "(HOLDFAST_SERVER) and that 'holdfast serve' runs there")

    def close(self) -> None:
        self._client.close()

    # --- jobs ------------------------------------------------------------------------

    def _start_job(self, path: str, body: Json) -> Json:
        job: Json = self._call("POST", path, json=body, retry=True,
                               headers={"Idempotency-Key": str(uuid.uuid4())})
        if not isinstance(job, dict) or "id" not in job:
            raise UnexpectedAnswer(f"{self._server} answered a job start without a job")
        return job

    def _follow(self, job: Json, progress: Follow) -> Json:
        """Follow ``job`` to its end, showing its bytes on ``progress``; its
        result, or the error it failed with. Ctrl-C cancels it."""
        try:
            with progress as shown:
                final = self._until_end(job, shown)
        except KeyboardInterrupt:
            raise self._cancel(job["id"]) from None
        return self._outcome(final)

    def _until_end(self, job: Json, shown: ProgressCallback) -> Json:
        started = time.monotonic()
        for current in self._events(job):
            if current.get("bytes_done") is not None:
                shown(int(current["bytes_done"]), time.monotonic() - started)
            if current.get("finished_at") is not None:
                return current
        # No stream (refused, or it broke): poll until the job has ended.
        while True:
            current = self._call("GET", f"/v1/jobs/{seg(job['id'])}")
            if current.get("bytes_done") is not None:
                shown(int(current["bytes_done"]), time.monotonic() - started)
            if current.get("finished_at") is not None:
                return dict(current)
            time.sleep(POLL_SECONDS)

    def _events(self, job: Json) -> Iterator[Json]:
        """The job's states from its event stream; stops early (the caller then
        polls) if the stream is refused or breaks."""
        import json

        timeout = httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT)
        try:
            with connect_sse(self._client, "GET", f"/v1/jobs/{seg(job['id'])}/events",
                             timeout=timeout) as source:
                if source.response.status_code != 200:
                    return
                for event in source.iter_sse():
                    if event.event in ("progress", "end"):
                        yield json.loads(event.data)
        except (httpx.TransportError, SSEError, ValueError):
            return

    def _outcome(self, job: Json) -> Json:
        status = job.get("status")
        if status == "succeeded":
            return dict(job.get("result") or {})
        message = " ".join(str(job.get("error") or f"job {job.get('id')} {status}").split())
        kind = job.get("error_type") or ("Cancelled" if status == "cancelled" else None)
        raise error_of(kind, f"job {job.get('id')} {status}: {message}", self._classes,
                       errors.HoldfastError)

    def _cancel(self, job_id: str) -> JobInterrupted:
        try:
            answer = self._client.request(
                "DELETE", f"/v1/jobs/{seg(job_id)}",
                timeout=httpx.Timeout(CANCEL_TIMEOUT, connect=CONNECT_TIMEOUT))
        except httpx.HTTPError:
            answer = None
        if answer is not None and answer.status_code in (200, 202):
            return JobInterrupted(f"interrupted; job {job_id} on {self._server} cancelled")
        if answer is not None and answer.status_code == 409:
            return JobInterrupted(f"interrupted; job {job_id} on {self._server} had already "
                                  f"ended (GET /v1/jobs/{job_id} shows how)")
        return JobInterrupted(f"interrupted; job {job_id} on {self._server} may still run "
                              f"(cancel it: DELETE /v1/jobs/{job_id})")

    # --- instances, backups, snapshots -----------------------------------------------

    def list_instances(self) -> list[Json]:
        return list(self._call("GET", "/v1/instances"))

    def forget_instance(self, name: str) -> Json:
        return dict(self._call("DELETE", f"/v1/instances/{seg(name)}"))

    def backup(self, instance: str, target: str | None, tags: Mapping[str, str], pin: bool,
               progress: Follow) -> Json:
        job = self._start_job(f"/v1/instances/{seg(instance)}/backups",
                              {"target": target, "tags": dict(tags), "pin": pin})
        return self._follow(job, progress)

    def list_snapshots(self, instance: str | None, tags: Mapping[str, str]) -> list[Json]:
        params: list[tuple[str, Any]] = [("instance", instance)] if instance else []
        params += [("tag", f"{key}:{value}") for key, value in tags.items()]
        return list(self._call("GET", "/v1/snapshots", params=params))

    def get_snapshot(self, ref: str) -> Json:
        return dict(self._call("GET", f"/v1/snapshots/{seg(ref)}"))

    def delete_snapshot(self, ref: str) -> Json:
        snapshot = self.get_snapshot(ref)  # a prefix names it; the answer has no body
        self._call("DELETE", f"/v1/snapshots/{seg(snapshot['id'])}")
        return snapshot

    def pin(self, ref: str, pinned: bool) -> Json:
        return dict(self._call("PUT" if pinned else "DELETE", f"/v1/snapshots/{seg(ref)}/pin"))

    def restore(self, ref: str, body: Json, progress: Follow, *, latest: bool = False,
                tags: Mapping[str, str] | None = None) -> Json:
        """Restore snapshot ``ref``, or with ``latest``/``tags`` the newest complete
        snapshot of instance ``ref`` (carrying ``tags``: the API filters by one)."""
        if tags and len(tags) > 1:
            raise errors.InvalidInput("a restore through --server takes one --tag (the API's "
                                      "filter); run 'holdfast snapshots NAME --tag … --tag …' "
                                      "and restore the id it lists")
        if latest or tags:
            tag = next((f"{k}:{v}" for k, v in (tags or {}).items()), None)
            job = self._start_job(f"/v1/instances/{seg(ref)}/restore",
                                  {**body, **({"tag": tag} if tag else {})})
        else:
            job = self._start_job(f"/v1/snapshots/{seg(ref)}/restore", body)
        return self._follow(job, progress)

    def undo_replace(self, name: str) -> Json:
        return dict(self._call("POST", f"/v1/containers/{seg(name)}/undo-replace",
                               read=SLOW_READ_TIMEOUT))

    def prune(self, instance: str | None, dry_run: bool) -> list[Json]:
        if instance is not None:
            return [dict(self._call("POST", f"/v1/instances/{seg(instance)}/prune",
                                    params={"dry_run": dry_run}))]
        return list(self._call("POST", "/v1/prune", params={"dry_run": dry_run},
                               read=SLOW_READ_TIMEOUT))

    def check_targets(self, names: list[str] | None) -> list[Json]:
        params = [("name", name) for name in names or ()]
        return list(self._call("GET", "/v1/targets/check", params=params,
                               read=SLOW_READ_TIMEOUT))

    def verify_snapshot(self, ref: str, progress: Follow) -> Json:
        """The report of the daemon's ``verify`` job (it succeeds, ``whole: false``
        on damage), so the exit status is the local one."""
        return self._follow(self._start_job(f"/v1/snapshots/{seg(ref)}/verify", {}), progress)

    def verify_restore(self, ref: str, progress: Follow) -> Json:
        """The verdict of the daemon's ``verify-restore`` job (it succeeds,
        ``result: failed`` when the snapshot differs), as the local one."""
        return self._follow(self._start_job(f"/v1/snapshots/{seg(ref)}/verify-restore", {}),
                            progress)

    def verify_target(self, name: str, progress: Follow) -> Json:
        return self._follow(self._start_job(f"/v1/targets/{seg(name)}/verify", {}), progress)

    def rebuild_catalog(self) -> Json:
        return dict(self._call("POST", "/v1/catalog/rebuild", read=SLOW_READ_TIMEOUT))

    # --- copies, tokens, volumes -----------------------------------------------------

    def list_copies(self) -> list[Json]:
        return list(self._call("GET", "/v1/copies"))

    def extend_copy(self, name: str, ttl: str) -> Json:
        return dict(self._call("PATCH", f"/v1/copies/{seg(name)}", json={"ttl": ttl}))

    def create_token(self, name: str, scopes: list[str], expires: str | None) -> Json:
        return dict(self._call("POST", "/v1/tokens",
                               json={"name": name, "scopes": scopes, "expires": expires}))

    def list_tokens(self) -> list[Json]:
        return list(self._call("GET", "/v1/tokens"))

    def revoke_token(self, name: str) -> None:
        self._call("DELETE", f"/v1/tokens/{seg(name)}")

    def list_notifications(self, limit: int, channel: str | None, event: str | None,
                           instance: str | None, status: str | None) -> list[Json]:
        wanted = {"limit": limit, "channel": channel, "event": event, "instance": instance,
                  "status": status}
        return list(self._call("GET", "/v1/notifications",
                               params={k: v for k, v in wanted.items() if v is not None}))

    def list_channels(self) -> list[Json]:
        return list(self._call("GET", "/v1/notifications/channels"))

    def test_channel(self, channel: str) -> Json:
        return dict(self._call("POST", "/v1/notifications/test", json={"channel": channel},
                               read=SLOW_READ_TIMEOUT))

    def list_volumes(self, sizes: bool) -> list[Json]:
        return list(self._call("GET", "/v1/volumes", params={"sizes": sizes},
                               read=SLOW_READ_TIMEOUT))

    def create_volume(self, name: str, labels: Mapping[str, str]) -> Json:
        return dict(self._call("POST", "/v1/volumes", json={"name": name,
                                                            "labels": dict(labels)}))

    def remove_volume(self, name: str) -> Json:
        return dict(self._call("DELETE", f"/v1/volumes/{seg(name)}"))

    def clone_volume(self, source: str, target: str, force: bool, progress: Follow) -> Json:
        job = self._start_job(f"/v1/volumes/{seg(source)}/clone",
                              {"target": target, "force": force})
        return self._follow(job, progress)

    def list_hosts(self) -> list[Json]:
        return list(self._call("GET", "/v1/hosts"))

    def list_warm(self, instance: str | None) -> list[Json]:
        return list(self._call("GET", "/v1/warm",
                               params={"instance": instance} if instance else None))

    def refresh_warm(self, instance: str, snapshot: str | None, progress: Follow) -> Json:
        job = self._start_job(f"/v1/instances/{seg(instance)}/warm", {"snapshot": snapshot})
        return self._follow(job, progress)

    def remove_warm(self, instance: str) -> list[Json]:
        return list(self._call("DELETE", f"/v1/instances/{seg(instance)}/warm"))


def http_client(server: str, token: str | None, ca_bundle: str | None) -> httpx.Client:
    """The client :class:`RemoteBackend` talks through: base URL ``server``, the
    token as a bearer header, TLS verified (against ``ca_bundle`` if given), a
    connect failure retried twice by the transport (nothing was sent)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    verify: Any = True
    if ca_bundle:
        import ssl

        verify = ssl.create_default_context(cafile=ca_bundle)
    transport = httpx.HTTPTransport(retries=2, verify=verify)
    return httpx.Client(base_url=server, headers=headers, transport=transport,
                        timeout=httpx.Timeout(READ_TIMEOUT, connect=CONNECT_TIMEOUT),
                        follow_redirects=False)
