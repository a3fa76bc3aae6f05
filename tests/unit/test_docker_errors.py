"""The Docker adapter's error translation, without an engine: docker-py and
requests errors, built by hand as the engine answers them, become
:mod:`backup.errors` by what the engine answered: its HTTP status and, for the
refusals Docker 20.10 sends as a plain 500, its words. An engine that answered
is never "unreachable"; only no answer at all is."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import docker.errors
import pytest
import requests
import requests.exceptions

from backup.errors import (
    DockerBusy,
    DockerRefused,
    DockerRejectedInput,
    DockerUnavailable,
    HoldfastError,
    ImageNotFound,
    NameTaken,
    NotFound,
    VolumeInUse,
    VolumeNotFound,
)
from backup.ports import ContainerSpec
from service.adapters.docker import DockerAdapter
from service.adapters.docker.connection import DockerConnection
from service.adapters.docker.containers import Containers
from service.adapters.docker.events import ContainerEvents
from service.adapters.docker.exec import Exec
from service.adapters.docker.helpers import Helpers
from service.adapters.docker.volumes import Volumes
from service.entrypoints.error_table import outcome_for

HOST = "unix:///nonexistent"


@pytest.fixture(autouse=True)
def _docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", HOST)


def api_error(status: int, explanation: str | None, reason: str = "") -> docker.errors.APIError:
    """An error as docker-py raises it for an HTTP answer of ``status``; built
    as the base class, so only the status can tell what it means."""
    response = requests.Response()
    response.status_code = status
    response.reason = reason
    response.url = "http+docker://localhost/v1.41/some/path"
    return docker.errors.APIError(f"{status} {reason}", response=response,
                                  explanation=explanation)


class StubApi:
    """The low-level client: every call either answers or raises what the test set."""

    def __init__(self) -> None:
        self.errors: dict[str, BaseException] = {}
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if name in self.errors:
                raise self.errors[name]
            return {"create_host_config": {}, "create_container": {"Id": "c0ffee" * 8},
                    "containers": []}.get(name)
        return call


class StubClient:
    def __init__(self) -> None:
        self.api = StubApi()

    def close(self) -> None:
        pass


@pytest.fixture
def client() -> StubClient:
    return StubClient()


@pytest.fixture
def connection(client: StubClient) -> DockerConnection:
    return DockerConnection(factory=lambda: client)


def raising(exc: BaseException) -> Callable[[], None]:
    def action() -> None:
        raise exc
    return action


# --- the one call() ------------------------------------------------------------------


def test_404_is_not_found_with_the_engines_explanation(connection: DockerConnection) -> None:
    with pytest.raises(NotFound) as caught:
        connection.call(raising(api_error(404, "No such container: db\nmore")))
    assert type(caught.value) is NotFound
    assert str(caught.value) == "No such container: db"


def test_404_without_an_explanation_keeps_the_status_and_reason(
    connection: DockerConnection,
) -> None:
    with pytest.raises(NotFound, match=r"404 Client Error for .*: Not Found"):
        connection.call(raising(api_error(404, None, "Not Found")))


def test_docker_pys_not_found_is_not_found(connection: DockerConnection) -> None:
    with pytest.raises(NotFound, match=r"^No such image: x$"):
        connection.call(raising(docker.errors.NotFound("gone", explanation="No such image: x")))


@pytest.mark.parametrize("status", [400, 403, 409, 422])
def test_other_4xx_is_docker_refused(connection: DockerConnection, status: int) -> None:
    with pytest.raises(DockerRefused) as caught:
        connection.call(raising(api_error(status, "port is already allocated")))
    assert str(caught.value) == "Docker refused: port is already allocated"
    assert not caught.value.retryable


def test_a_409_becomes_the_callers_conflict(connection: DockerConnection) -> None:
    with pytest.raises(NameTaken, match=r"^taken: Docker refused: busy$"):
        connection.call(raising(api_error(409, "busy")),
                        conflict=lambda refused: NameTaken(f"taken: {refused}"))
    # ... and only a 409: the same words with another status are a refusal.
    with pytest.raises(DockerRefused):
        connection.call(raising(api_error(400, "busy")),
                        conflict=lambda refused: NameTaken(f"taken: {refused}"))


@pytest.mark.parametrize("error", [
    api_error(502, None, "Bad Gateway"),
    api_error(503, None, "Service Unavailable"),
    api_error(504, None, "Gateway Timeout"),
    requests.exceptions.ConnectionError("Connection aborted: [Errno 2] No such file"),
    requests.exceptions.ConnectTimeout("timed out connecting to the engine"),
    ConnectionRefusedError(111, "Connection refused"),
    ConnectionResetError(104, "Connection reset by peer"),
    FileNotFoundError(2, "No such file or directory"),
    docker.errors.DockerException("Error while fetching server API version"),
], ids=["502", "503", "504", "requests-connection", "connect-timeout", "refused", "reset",
        "no-socket", "docker-exception"])
def test_no_answer_and_gateway_errors_are_docker_unavailable(
    connection: DockerConnection, error: BaseException,
) -> None:
    with pytest.raises(DockerUnavailable) as caught:
        connection.call(raising(error))
    message = str(caught.value)
    assert message.startswith(f"cannot reach the Docker engine at {HOST}: ")
    assert message.endswith("; start Docker or set DOCKER_HOST")
    assert caught.value.retryable
    assert outcome_for(caught.value).http_status == 503


def test_an_answer_that_does_not_come_in_time_is_docker_unavailable(
    connection: DockerConnection,
) -> None:
    error = requests.exceptions.ReadTimeout("Read timed out. (read timeout=60)")
    with pytest.raises(DockerUnavailable) as caught:
        connection.call(raising(error))
    assert str(caught.value) == (f"the Docker engine at {HOST} did not answer in time: Read "
                                 "timed out. (read timeout=60); it may be overloaded, retry later")


# --- refusals Docker 20.10 sends as a 500 ------------------------------------------------

LONG_NAME = "hf-" + "a" * 297
# Docker 20.10's answer to `docker volume create <300 characters>`, word for word.
NAME_TOO_LONG = (f"create {LONG_NAME}: error while creating volume root path "
                 f"'/var/lib/docker/volumes/{LONG_NAME}': mkdir "
                 f"/var/lib/docker/volumes/{LONG_NAME}: file name too long")
DISK_USAGE_BUSY = "a disk usage operation is already running"


def caught_by(connection: DockerConnection, error: BaseException) -> HoldfastError:
    with pytest.raises(HoldfastError) as caught:
        connection.call(raising(error))
    return caught.value


def test_a_name_too_long_for_the_file_system_is_bad_input_not_an_engine_down(
    connection: DockerConnection,
) -> None:
    error = caught_by(connection, api_error(500, NAME_TOO_LONG, "Internal Server Error"))
    assert isinstance(error, DockerRejectedInput) and not isinstance(error, DockerUnavailable)
    assert (outcome_for(error).http_status, outcome_for(error).exit_code) == (400, 2)
    message = str(error)
    assert message.startswith(f"Docker refused: create {LONG_NAME[:40]}")
    assert message.endswith(": file name too long; use a shorter name")
    # Docker repeats the name three times; the message keeps one line of about 300.
    assert "\n" not in message and len(message) < 400


def test_a_second_disk_usage_walk_is_busy_and_may_be_retried(
    connection: DockerConnection,
) -> None:
    error = caught_by(connection, api_error(500, DISK_USAGE_BUSY, "Internal Server Error"))
    assert isinstance(error, DockerBusy) and error.retryable
    assert (outcome_for(error).http_status, outcome_for(error).exit_code) == (409, 4)
    assert str(error) == ("the Docker engine is busy: a disk usage operation is already "
                          "running; retry in a moment")


@pytest.mark.parametrize("explanation", [
    "Internal Server Error",
    "driver failed programming external connectivity on endpoint db: Bind for "
    "0.0.0.0:5432 failed: port is already allocated",
])
def test_any_other_500_is_the_engine_refusing_with_its_reason(
    connection: DockerConnection, explanation: str,
) -> None:
    error = caught_by(connection, api_error(500, explanation, "Internal Server Error"))
    assert type(error) is DockerRefused
    assert str(error) == f"Docker refused: {explanation}"
    assert (outcome_for(error).http_status, outcome_for(error).exit_code) == (409, 4)


def test_a_400_is_bad_input(connection: DockerConnection) -> None:
    error = caught_by(connection, api_error(
        400, 'create a: volume name is too short, names should be at least two alphanumeric '
             'characters', "Bad Request"))
    assert isinstance(error, DockerRejectedInput)
    assert (outcome_for(error).http_status, outcome_for(error).exit_code) == (400, 2)


def test_docker_pys_own_argument_checks_are_bad_input(connection: DockerConnection) -> None:
    error = caught_by(connection, docker.errors.NullResource("Resource ID was not provided"))
    assert isinstance(error, DockerRejectedInput)
    assert str(error) == "Docker refused: Resource ID was not provided"


def test_a_client_that_cannot_be_made_is_docker_unavailable() -> None:
    connection = DockerConnection(factory=raising(
        docker.errors.DockerException("Error while fetching server API version")))
    with pytest.raises(DockerUnavailable, match=r"start Docker or set DOCKER_HOST"):
        connection.ping()


def test_other_errors_pass_through(connection: DockerConnection) -> None:
    with pytest.raises(KeyError):
        connection.call(raising(KeyError("Id")))


# --- the parts that give a status its meaning -----------------------------------------


def volumes(connection: DockerConnection) -> Volumes:
    return Volumes(connection, Helpers(connection, Exec(connection)))


def test_409_on_volume_removal_is_volume_in_use(connection: DockerConnection,
                                                client: StubClient) -> None:
    client.api.errors["remove_volume"] = api_error(
        409, "remove data: volume is being used by [1f2e3d]", "Conflict")
    with pytest.raises(VolumeInUse) as caught:
        volumes(connection).remove_unused_volume("data")
    assert str(caught.value) == \
        "volume data is in use: Docker refused: remove data: volume is being used by [1f2e3d]"


def test_in_use_in_a_refusal_that_is_no_409_is_no_volume_in_use(
    connection: DockerConnection, client: StubClient,
) -> None:
    client.api.errors["remove_volume"] = api_error(400, "volume is in use")
    with pytest.raises(DockerRefused) as caught:
        volumes(connection).remove_unused_volume("data")
    assert not isinstance(caught.value, VolumeInUse)


def test_404_on_volume_removal_is_volume_not_found(connection: DockerConnection,
                                                   client: StubClient) -> None:
    client.api.errors["remove_volume"] = api_error(404, "get data: no such volume")
    with pytest.raises(VolumeNotFound, match=r"^no volume named data$"):
        volumes(connection).remove_unused_volume("data")


def test_a_start_refused_with_a_500_is_docker_refused(connection: DockerConnection,
                                                      client: StubClient) -> None:
    client.api.errors["start"] = api_error(
        500, "failed to create shim task: error mounting \"/srv\"", "Internal Server Error")
    with pytest.raises(DockerRefused) as caught:
        Containers(connection).start("0123456789abcdef")
    assert str(caught.value) == ("cannot start container 0123456789ab: Docker refused: "
                                 "failed to create shim task: error mounting \"/srv\"")


def test_a_start_the_engine_never_answered_is_docker_unavailable(
    connection: DockerConnection, client: StubClient,
) -> None:
    client.api.errors["start"] = requests.exceptions.ConnectionError("Connection aborted")
    with pytest.raises(DockerUnavailable, match=r"start Docker or set DOCKER_HOST"):
        Containers(connection).start("0123456789abcdef")


def test_a_409_on_create_is_the_name_taken(connection: DockerConnection,
                                           client: StubClient) -> None:
    client.api.errors["inspect_container"] = api_error(404, "No such container: db")
    client.api.errors["create_container"] = api_error(
        409, 'Conflict. The container name "/db" is already in use', "Conflict")
    spec = ContainerSpec(name="db", image="postgres:16", env={}, volumes={})
    with pytest.raises(NameTaken, match=r"^a container named db already exists$"):
        Containers(connection).create_container(spec)


def test_a_missing_helper_image_that_cannot_be_pulled_is_image_not_found(
    connection: DockerConnection, client: StubClient,
) -> None:
    client.api.errors["create_container"] = docker.errors.ImageNotFound(
        "404", explanation="No such image: helper:1")
    client.api.errors["inspect_image"] = docker.errors.ImageNotFound(
        "404", explanation="no such image: helper:1: No such image: helper:1")
    client.api.errors["pull"] = api_error(
        500, 'Get "https://registry-1.docker.io/v2/": dial tcp: lookup registry-1.docker.io '
             "on 10.255.255.53:53: no such host", "Internal Server Error")
    helpers = Helpers(connection, Exec(connection), "helper:1")
    with pytest.raises(ImageNotFound) as caught:
        helpers.helper_run(["true"])
    assert str(caught.value) == (
        'cannot pull helper image helper:1: Get "https://registry-1.docker.io/v2/": dial tcp: '
        "lookup registry-1.docker.io on 10.255.255.53:53: no such host; load it with "
        "`docker load` or set HOLDFAST_HELPER_IMAGE to a local image that has sh and GNU tar")
    assert outcome_for(caught.value).exit_code == 3
    assert "start" not in client.api.calls


def test_a_404_on_helper_create_with_the_image_present_is_not_a_pull(
    connection: DockerConnection, client: StubClient,
) -> None:
    client.api.errors["create_container"] = api_error(404, "No such container: gone")
    helpers = Helpers(connection, Exec(connection), "helper:1")
    with pytest.raises(NotFound, match=r"^No such container: gone$"):
        helpers.helper_run(["true"], volumes_from="gone")
    assert "pull" not in client.api.calls


def test_a_helper_that_cannot_start_is_removed_and_refused(connection: DockerConnection,
                                                           client: StubClient) -> None:
    client.api.errors["start"] = api_error(500, "no such file: sleep", "Internal Server Error")
    helpers = Helpers(connection, Exec(connection))
    with pytest.raises(DockerRefused,
                       match=r"^cannot start a helper container: Docker refused: no such file"):
        helpers.helper_run(["true"])
    assert client.api.calls[-1] == "remove_container"


def test_a_broken_event_stream_is_docker_unavailable() -> None:
    def stream() -> Any:
        yield {"Action": "start", "Actor": {"ID": "abc"}}
        raise requests.exceptions.ChunkedEncodingError("Connection broken: IncompleteRead")

    events = iter(ContainerEvents(stream()))
    assert next(events) == ("start", "abc")
    with pytest.raises(DockerUnavailable, match=r"^the Docker event stream broke: "):
        next(events)


def test_the_adapter_translates_through_its_one_connection(client: StubClient) -> None:
    adapter = DockerAdapter(factory=lambda: client)
    client.api.errors["remove_volume"] = api_error(409, "volume is being used", "Conflict")
    with pytest.raises(VolumeInUse):
        adapter.remove_unused_volume("data")
    client.api.errors["inspect_container"] = api_error(404, "No such container: x")
    with pytest.raises(NotFound):
        adapter.inspect("x")
