"""The Docker adapter's image pulls and volume sizing, on a stub of docker-py's
low-level client that answers as Docker 20.10 does: a pull streams progress
messages (or fails with the engine's reason), and a second disk-usage walk
started while one runs is refused with "a disk usage operation is already
running" (a 500). No engine needed."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import docker.errors
import pytest
import requests

from backup.errors import DockerBusy, ImagePullFailed
from backup.ports import ExecResult, VolumeSpec
from service.adapters.docker import volumes as volumes_module
from service.adapters.docker.connection import DockerConnection
from service.adapters.docker.helpers import Helpers
from service.adapters.docker.images import PROGRESS_EVERY, Images, PullProgress
from service.adapters.docker.volumes import Volumes

IMAGE = "helper:1"
PULL_MESSAGES: list[dict[str, Any]] = [
    {"status": "Pulling from library/helper", "id": "1"},
    {"status": "Pulling fs layer", "progressDetail": {}, "id": "aa11"},
    {"status": "Downloading", "progressDetail": {"current": 100, "total": 2000}, "id": "aa11"},
    {"status": "Downloading", "progressDetail": {"current": 900, "total": 2000}, "id": "aa11"},
    {"status": "Download complete", "progressDetail": {}, "id": "aa11"},
    {"status": "Pull complete", "progressDetail": {}, "id": "aa11"},
    {"status": "Digest: sha256:" + "0" * 64},
    {"status": "Status: Downloaded newer image for helper:1"},
]


def api_error(status: int, explanation: str) -> docker.errors.APIError:
    response = requests.Response()
    response.status_code = status
    response.url = "http+docker://localhost/v1.41/some/path"
    return docker.errors.APIError(f"{status}", response=response, explanation=explanation)


class StubEngine:
    """docker-py's APIClient as far as images, helpers and volume sizes go."""

    def __init__(self, *, pullable: bool = True, walk_seconds: float = 0.0) -> None:
        self.images: set[str] = set()
        self.pullable = pullable
        self.pull_messages = PULL_MESSAGES
        self.walk_seconds = walk_seconds
        self.calls: list[str] = []
        self.busy_answers = 0
        """How many walks another client is still running: each df is refused."""
        self._walking = threading.Lock()
        self._calls_lock = threading.Lock()

    def _record(self, name: str) -> None:
        with self._calls_lock:
            self.calls.append(name)

    # --- images and helpers ---

    def inspect_image(self, image: str) -> dict[str, Any]:
        self._record("inspect_image")
        if image not in self.images:
            raise docker.errors.ImageNotFound(
                "404", explanation=f"no such image: {image}: No such image: {image}")
        return {"Id": "sha256:" + "1" * 64}

    def pull(self, image: str, stream: bool, decode: bool) -> Iterator[dict[str, Any]]:
        self._record("pull")
        if not self.pullable:
            raise api_error(500, 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup '
                                 "registry-1.docker.io: no such host")

        def messages() -> Iterator[dict[str, Any]]:
            time.sleep(0.05)  # long enough for concurrent callers to queue up
            yield from self.pull_messages
            if not any("error" in m for m in self.pull_messages):
                self.images.add(image)
        return messages()

    def create_host_config(self, **kwargs: Any) -> dict[str, Any]:
        return {}

    def create_container(self, image: str, **kwargs: Any) -> dict[str, str]:
        self._record("create_container")
        if image not in self.images:
            raise docker.errors.ImageNotFound("404", explanation=f"No such image: {image}")
        return {"Id": "c0ffee" * 8}

    def start(self, container_id: str) -> None:
        self._record("start")

    def remove_container(self, container_id: str, force: bool) -> None:
        self._record("remove_container")

    # --- volumes ---

    def volumes(self) -> dict[str, Any]:
        return {"Volumes": [{"Name": "data", "Driver": "local", "Labels": {}}]}

    def containers(self, all: bool) -> list[dict[str, Any]]:
        return []

    def inspect_volume(self, name: str) -> dict[str, Any]:
        if name != "data":
            raise docker.errors.NotFound("404", explanation=f"get {name}: no such volume")
        return {"Name": "data", "Driver": "local", "Labels": {}}

    def create_volume(self, name: str, labels: Mapping[str, str]) -> None:
        self._record("create_volume")

    def df(self) -> dict[str, Any]:
        self._record("df")
        if self.busy_answers:
            self.busy_answers -= 1
            raise api_error(500, "a disk usage operation is already running")
        # Docker 20.10 runs one walk at a time and refuses a second outright.
        if not self._walking.acquire(blocking=False):
            raise api_error(500, "a disk usage operation is already running")
        try:
            time.sleep(self.walk_seconds)
            return {"Volumes": [{"Name": "data", "UsageData": {"Size": 4096, "RefCount": 0}}]}
        finally:
            self._walking.release()


class StubClient:
    def __init__(self, api: StubEngine) -> None:
        self.api = api

    def close(self) -> None:
        pass


class FakeExec:
    """The exec part: every command in a helper succeeds."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, list[str]]] = []

    def run(self, container_id: str, argv: Sequence[str], **kwargs: Any) -> ExecResult:
        self.ran.append((container_id, list(argv)))
        return ExecResult(exit_code=0, stdout=b"", stderr="")


def connection_to(engine: StubEngine) -> DockerConnection:
    return DockerConnection(factory=lambda: StubClient(engine))


# --- pulling the helper image ------------------------------------------------------------


def test_a_missing_helper_image_is_pulled_with_progress_then_used(
    caplog: pytest.LogCaptureFixture,
) -> None:
    engine = StubEngine()
    executor = FakeExec()
    helpers = Helpers(connection_to(engine), executor, IMAGE)  # type: ignore[arg-type]
    with caplog.at_level(logging.INFO, logger="service.adapters.docker.images"):
        result = helpers.helper_run(["true"])
    assert result.exit_code == 0 and executor.ran == [("c0ffee" * 8, ["true"])]
    assert engine.calls.count("pull") == 1
    assert engine.calls.count("create_container") == 2  # refused, pulled, created
    assert [r.getMessage() for r in caplog.records] == [
        "image helper:1 is not on the Docker engine; pulling it",
        "pulling helper:1: layer aa11: pulling fs layer",
        "pulling helper:1: layer aa11: downloading",
        "pulling helper:1: layer aa11: download complete",
        "pulling helper:1: layer aa11: pull complete",
        "pulling helper:1: Digest: sha256:" + "0" * 64,
        "pulling helper:1: Status: Downloaded newer image for helper:1",
        "pulled image helper:1",
    ]


def test_a_present_helper_image_is_not_pulled() -> None:
    engine = StubEngine()
    engine.images.add(IMAGE)
    Helpers(connection_to(engine), FakeExec(), IMAGE).helper_run(["true"])  # type: ignore[arg-type]
    assert "pull" not in engine.calls


def test_an_engine_without_a_registry_gives_one_line_naming_the_way_out() -> None:
    engine = StubEngine(pullable=False)
    helpers = Helpers(connection_to(engine), FakeExec(), IMAGE)  # type: ignore[arg-type]
    with pytest.raises(ImagePullFailed) as caught:
        helpers.helper_run(["true"])
    assert str(caught.value) == (
        'cannot pull helper image helper:1: Get "https://registry-1.docker.io/v2/": dial tcp: '
        "lookup registry-1.docker.io: no such host; load it with `docker load` or set "
        "HOLDFAST_HELPER_IMAGE to a local image that has sh and GNU tar")
    assert "start" not in engine.calls


def test_an_error_inside_the_pull_stream_is_the_reason() -> None:
    engine = StubEngine()
    engine.pull_messages = [
        {"status": "Pulling from library/helper", "id": "1"},
        {"error": "manifest for helper:1 not found: manifest unknown",
         "errorDetail": {"message": "manifest for helper:1 not found: manifest unknown"}},
    ]
    with pytest.raises(ImagePullFailed) as caught:
        Images(connection_to(engine)).ensure_image(IMAGE)
    assert str(caught.value) == ("cannot pull image helper:1: manifest for helper:1 not found: "
                                 "manifest unknown; pull or load it on the Docker host, or "
                                 "name another image")


def test_callers_asking_at_once_share_one_pull() -> None:
    engine = StubEngine()
    images = Images(connection_to(engine))
    errors: list[BaseException] = []

    def ensure() -> None:
        try:
            images.ensure_image(IMAGE)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=ensure) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == [] and engine.calls.count("pull") == 1


def test_progress_logs_state_changes_and_a_summary_every_few_seconds() -> None:
    now = [0.0]
    progress = PullProgress("img:1", clock=lambda: now[0])
    first = progress.feed({"status": "Downloading", "id": "l1",
                           "progressDetail": {"current": 1_000_000, "total": 10_000_000}})
    assert first == ["image img:1 is not on the Docker engine; pulling it",
                     "pulling img:1: layer l1: downloading"]
    now[0] = PROGRESS_EVERY / 2
    assert progress.feed({"status": "Downloading", "id": "l1",
                          "progressDetail": {"current": 2_000_000, "total": 10_000_000}}) == []
    now[0] = PROGRESS_EVERY + 0.1
    assert progress.feed({"status": "Downloading", "id": "l1",
                          "progressDetail": {"current": 4_000_000, "total": 10_000_000}}) == [
        "pulling img:1: layers 0/1 complete, 4.0 of 10.0 MB"]


# --- volume sizes ------------------------------------------------------------------------


def volumes_on(engine: StubEngine) -> Volumes:
    connection = connection_to(engine)
    return Volumes(connection, Helpers(connection, FakeExec()))  # type: ignore[arg-type]


def test_concurrent_size_listings_all_succeed_on_one_walk() -> None:
    engine = StubEngine(walk_seconds=0.3)
    volumes = volumes_on(engine)
    results: list[int | None] = []
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    def listing() -> None:
        start.wait()
        try:
            results.append(volumes.list_volumes(sizes=True)[0].size_bytes)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=listing) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert results == [4096] * 8
    assert engine.calls.count("df") == 1


def test_a_walk_another_client_runs_is_waited_for() -> None:
    engine = StubEngine()
    engine.busy_answers = 2
    assert volumes_on(engine).get_volume("data", size=True).size_bytes == 4096  # type: ignore[union-attr]
    assert engine.calls.count("df") == 3


def test_a_walk_that_stays_busy_is_docker_busy_after_a_while(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(volumes_module, "BUSY_WAIT", 0.3)
    engine = StubEngine()
    engine.busy_answers = 1_000
    with pytest.raises(DockerBusy) as caught:
        volumes_on(engine).list_volumes(sizes=True)
    assert str(caught.value) == ("the Docker engine is still measuring disk usage for another "
                                 "client after 0s; retry later, or list without sizes")
    assert caught.value.retryable


def test_sizes_are_measured_again_after_this_adapter_changes_a_volume() -> None:
    engine = StubEngine()
    volumes = volumes_on(engine)
    volumes.list_volumes(sizes=True)
    volumes.list_volumes(sizes=True)
    assert engine.calls.count("df") == 1  # the second shares the first walk
    volumes.create_volume(VolumeSpec(name="fresh"))
    volumes.list_volumes(sizes=True)
    assert engine.calls.count("df") == 2
    volumes.list_volumes(sizes=False)
    assert engine.calls.count("df") == 2
