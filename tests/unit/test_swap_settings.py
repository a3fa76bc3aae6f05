"""What a swap reads of a container from Docker's inspect answer
(:func:`service.adapters.docker.swap.settings_of`): the aliases given on each network,
the network it was created on first, configured port bindings (an engine-chosen host
port pinned to the one bound), and the restart policy."""

from __future__ import annotations

from typing import Any

from backup.ports import PublishedPort
from restore.swap import ContainerSettings, RestartPolicy
from service.adapters.docker.swap import settings_of

CONTAINER_ID = "4f1c2a9b7d3e" + "0" * 52


def _inspect(**host: Any) -> dict[str, Any]:
    return {
        "Id": CONTAINER_ID, "Name": "/prod-db",
        "HostConfig": {"NetworkMode": "zz-lan",
                       "PortBindings": {"5432/tcp": [{"HostIp": "", "HostPort": "15432"}],
                                        "9187/tcp": [{"HostIp": "127.0.0.1", "HostPort": ""}]},
                       "RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 5},
                       **host},
        "NetworkSettings": {
            "Networks": {"aa-internal": {"Aliases": ["db", CONTAINER_ID[:12], "prod-db"]},
                         "zz-lan": {"Aliases": None}},
            "Ports": {"5432/tcp": [{"HostIp": "0.0.0.0", "HostPort": "15432"}],
                      "9187/tcp": [{"HostIp": "127.0.0.1", "HostPort": "49160"}]}},
    }


def test_settings_of_a_running_container() -> None:
    settings = settings_of(_inspect())
    assert settings == ContainerSettings(
        networks={"zz-lan": (), "aa-internal": ("db",)},
        published=(PublishedPort(5432, 15432, ""), PublishedPort(9187, 49160, "127.0.0.1")),
        restart=RestartPolicy("on-failure", 5))
    assert list(settings.networks) == ["zz-lan", "aa-internal"]  # created on zz-lan


def test_settings_of_a_stopped_container_without_bindings_or_policy() -> None:
    data = _inspect(RestartPolicy={"Name": "", "MaximumRetryCount": 0}, NetworkMode="default")
    data["NetworkSettings"]["Ports"] = {}
    settings = settings_of(data)
    assert settings.restart == RestartPolicy("no") and not settings.restart.restarts
    assert settings.published[1] == PublishedPort(9187, 0, "127.0.0.1")  # engine's choice
    assert list(settings.networks) == ["aa-internal", "zz-lan"]
