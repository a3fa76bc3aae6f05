"""Two scopes on the real engine: two discoveries, each with its own
``HOLDFAST_SCOPE``, over one Docker engine; each lists and follows only the
containers labelled with its scope, through the engine's own label filters.

The scopes are fresh values, so containers of other tests on the shared engine
never match them; every container here carries ``holdfast.test=1``, runs on the
internal test network and is removed at teardown.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from service.adapters.docker import DockerAdapter
from service.bootstrap import Services
from service.entrypoints.daemon.discovery import Discovery
from service.settings import Settings
from service.usecases.instances import Instance
from tests.fakes.catalog import InMemoryCatalog
from tests.harness.daemon import wait_for
from tests.harness.docker_fixtures import HELPER_IMAGE, TEST_LABEL, DockerCleanup, require_image

pytestmark = pytest.mark.docker


class Recorder:
    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self._lock = threading.Lock()

    def __call__(self, instances: list[Instance], catch_up: bool) -> None:
        with self._lock:
            self.calls.append([i.name for i in instances])

    def last(self) -> list[str] | None:
        with self._lock:
            return self.calls[-1] if self.calls else None


@pytest.fixture
def cleanup(docker_client: docker.DockerClient) -> Iterator[DockerCleanup]:
    made = DockerCleanup(docker_client)
    yield made
    errors = made.remove_all()
    if errors:
        pytest.fail("cleanup failed:\n" + "\n".join(errors), pytrace=False)


def test_two_scopes_on_one_engine_each_discover_only_their_own(
        docker_client: docker.DockerClient, test_network: str, cleanup: DockerCleanup,
        tmp_path: Path) -> None:
    image = require_image(docker_client, HELPER_IMAGE)
    tag = uuid.uuid4().hex[:8]
    scopes = {"a": f"team-a-{tag}", "b": f"team-b-{tag}"}

    def run(name: str, scope: str) -> str:
        full = f"hf-scope-{name}-{tag}"
        cleanup.containers.append(full)
        docker_client.containers.run(
            image, ["sleep", "infinity"], name=full, detach=True, init=True,
            network=test_network, labels={TEST_LABEL: "1", "holdfast.enable": "true",
                                          "holdfast.engine": "volume",
                                          "holdfast.scope": scope})
        return full

    early = {key: run(f"early-{key}", scope) for key, scope in scopes.items()}
    discoveries, records = {}, {}
    for key, scope in scopes.items():
        settings = Settings.load({"HOLDFAST_DATA_DIR": str(tmp_path / key),
                                  "HOLDFAST_SCOPE": scope})
        services = Services(settings=settings, catalog=InMemoryCatalog(),
                            docker=DockerAdapter(helper_image=HELPER_IMAGE))
        records[key] = Recorder()
        discoveries[key] = Discovery(services, records[key], max_backoff=0.5)
    try:
        for discovery in discoveries.values():
            discovery.start()
        for key, discovery in discoveries.items():
            wait_for(discovery.connected.is_set, 30, f"discovery of scope {key}")
            assert records[key].calls[0] == [early[key]]  # the listing: its own only

        # Followed through events: b's container first, then a's, so by the time
        # a's discovery has seen its own, b's event would have come before it.
        late_b = run("late-b", scopes["b"])
        late_a = run("late-a", scopes["a"])
        wait_for(lambda: records["a"].last() == sorted([early["a"], late_a]), 30,
                 "scope a to discover its late container")
        wait_for(lambda: records["b"].last() == sorted([early["b"], late_b]), 30,
                 "scope b to discover its late container")
        assert records["a"].calls == [[early["a"]], sorted([early["a"], late_a])]
        assert all(late_b not in names and early["b"] not in names
                   for names in records["a"].calls)
        assert all(late_a not in names and early["a"] not in names
                   for names in records["b"].calls)
    finally:
        for discovery in discoveries.values():
            discovery.stop()
