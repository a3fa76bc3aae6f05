"""The contract of :class:`service.ports.DockerEngine`, as a reusable test mixin.

In the manner of :mod:`tests.contract.storage_contract`: a test class inherits
:class:`DockerEngineContract` and supplies the fixtures below. It runs against
the real :class:`~service.adapters.docker.DockerAdapter` on a Docker engine and
against :class:`~tests.fakes.docker.FakeDocker`, so the Docker-free use-case
tier rests on a fake that behaves like the engine where the use cases look:
errors (class and the name in the message), discovery, volume users, the stop
and start that recovery relies on, what create and remove leave behind, and
the labelled internal networks a verified restore makes and removes.
When the two disagree, the real adapter is the reference.

Fixtures a test class provides:

``docker_engine``
    The :class:`~service.ports.DockerEngine` under test.
``image``
    The image ``make_container`` runs.
``unique_name``
    ``unique_name(kind)`` returns a fresh container or volume name (uuid
    suffix); whatever exists under it is removed at teardown.
``make_container``
    ``make_container(name, labels, volume)`` creates and starts a long-lived
    container of ``image`` named ``name``, carrying ``labels`` (the
    implementation may add its own), with the fresh named volume ``volume``
    mounted at :data:`VOLUME_DESTINATION`; returns its id.
``container_spec``
    ``container_spec(name, volumes)`` returns a :class:`ContainerSpec` the
    engine can create and start (a long-lived command), with the volumes given
    (name -> destination), on one existing ``--internal`` network.

The engine may hold containers and volumes of others, so every check of a
listing is scoped to the test's own names.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

import pytest

from backup.errors import (
    DockerRefused,
    ImagePullFailed,
    NameTaken,
    NotFound,
    VolumeInUse,
    VolumeNotFound,
)
from backup.ports import ContainerSpec, PublishedPort, VolumeSpec
from backup.types import Mount
from restore.swap import NO_RESTART, ContainerSettings, RestartPolicy
from service.ports import DockerEngine

VOLUME_DESTINATION = "/data"
ENABLE_LABELS = {"holdfast.enable": "true"}
# The engine's clock and the test's are the same machine's; the slack only
# covers the time a stop takes and rounding.
CLOCK_SLACK = timedelta(seconds=30)
STOP_TIMEOUT = 1

NameFactory = Callable[[str], str]


class ContainerFactory(Protocol):
    def __call__(self, name: str, labels: Mapping[str, str], volume: str) -> str: ...


class SpecFactory(Protocol):
    def __call__(self, name: str, volumes: Mapping[str, str]) -> ContainerSpec: ...


class DockerEngineContract:
    # --- the engine and containers -------------------------------------------------

    def test_ping_passes(self, docker_engine: DockerEngine) -> None:
        docker_engine.ping()

    def test_unknown_container_is_not_found_and_named(
        self, docker_engine: DockerEngine, unique_name: NameFactory,
    ) -> None:
        missing = unique_name("missing")
        calls: dict[str, Callable[[], object]] = {
            "inspect": lambda: docker_engine.inspect(missing),
            "stopped_at": lambda: docker_engine.stopped_at(missing),
            "stop_container": lambda: docker_engine.stop_container(missing,
                                                                   timeout=STOP_TIMEOUT),
            "start": lambda: docker_engine.start(missing),
        }
        for what, call in calls.items():
            with pytest.raises(NotFound) as caught:
                call()
            assert missing in str(caught.value), what
        assert not docker_engine.container_name_taken(missing)

    def test_inspect_reports_name_image_state_labels_and_mounts(
        self, docker_engine: DockerEngine, make_container: ContainerFactory,
        unique_name: NameFactory, image: str,
    ) -> None:
        name, volume = unique_name("ctr"), unique_name("vol")
        labels = {**ENABLE_LABELS, "holdfast.contract": "inspect"}
        container_id = make_container(name, labels, volume)

        seen = docker_engine.inspect(container_id)
        assert seen.id == container_id
        assert seen.name == name
        assert seen.image == image
        assert seen.running is True
        assert seen.labels.items() >= labels.items()
        assert Mount(destination=VOLUME_DESTINATION, kind="volume", source=volume) in seen.mounts
        assert docker_engine.inspect(name).id == container_id  # a name works as an id

    def test_labelled_containers_are_those_with_the_enable_label(
        self, docker_engine: DockerEngine, make_container: ContainerFactory,
        unique_name: NameFactory,
    ) -> None:
        labelled, plain = unique_name("ctr"), unique_name("ctr")
        labelled_id = make_container(labelled, ENABLE_LABELS, unique_name("vol"))
        make_container(plain, {}, unique_name("vol"))

        found = {c.name: c for c in docker_engine.labelled_containers()
                 if c.name in (labelled, plain)}
        assert list(found) == [labelled]
        assert found[labelled].id == labelled_id and found[labelled].running is True
        running = {c.name for c in docker_engine.labelled_containers(include_stopped=False)}
        assert labelled in running and plain not in running

    def test_labelled_containers_are_those_of_the_scope_asked_for(
        self, docker_engine: DockerEngine, make_container: ContainerFactory,
        unique_name: NameFactory,
    ) -> None:
        plain, team_a, team_b = unique_name("ctr"), unique_name("ctr"), unique_name("ctr")
        make_container(plain, ENABLE_LABELS, unique_name("vol"))
        make_container(team_a, {**ENABLE_LABELS, "holdfast.scope": "team-a"}, unique_name("vol"))
        make_container(team_b, {**ENABLE_LABELS, "holdfast.scope": "team-b"}, unique_name("vol"))
        ours = {plain, team_a, team_b}

        def listed(scope: str | None) -> set[str]:
            return {c.name for c in docker_engine.labelled_containers(scope=scope)
                    if c.name in ours}

        # Unscoped means "no scope label", not "every scope".
        assert listed(None) == {plain}
        assert listed("team-a") == {team_a}
        assert listed("team-b") == {team_b}
        assert listed("team") == set()  # a value is matched whole

    def test_only_running_ones_are_listed_without_include_stopped(
        self, docker_engine: DockerEngine, make_container: ContainerFactory,
        unique_name: NameFactory,
    ) -> None:
        name = unique_name("ctr")
        container_id = make_container(name, ENABLE_LABELS, unique_name("vol"))
        docker_engine.stop_container(container_id, timeout=STOP_TIMEOUT)

        assert name not in {c.name for c in
                            docker_engine.labelled_containers(include_stopped=False)}
        stopped = [c for c in docker_engine.labelled_containers(include_stopped=True)
                   if c.name == name]
        assert [c.running for c in stopped] == [False]

    def test_container_names_and_name_taken(
        self, docker_engine: DockerEngine, make_container: ContainerFactory,
        unique_name: NameFactory,
    ) -> None:
        name, free = unique_name("ctr"), unique_name("ctr")
        make_container(name, {}, unique_name("vol"))

        names = docker_engine.container_names()
        assert name in names and free not in names
        assert docker_engine.container_name_taken(name) is True
        assert docker_engine.container_name_taken(free) is False

    def test_stop_then_start(
        self, docker_engine: DockerEngine, make_container: ContainerFactory,
        unique_name: NameFactory,
    ) -> None:
        container_id = make_container(unique_name("ctr"), ENABLE_LABELS, unique_name("vol"))
        assert docker_engine.stopped_at(container_id) is None

        before = datetime.now(UTC)
        docker_engine.stop_container(container_id, timeout=STOP_TIMEOUT)
        after = datetime.now(UTC)
        stopped = docker_engine.stopped_at(container_id)
        assert stopped is not None and stopped.tzinfo is not None
        assert before - CLOCK_SLACK <= stopped <= after + CLOCK_SLACK
        assert docker_engine.inspect(container_id).running is False

        # Stopping a stopped container changes nothing: it stopped when it stopped.
        docker_engine.stop_container(container_id, timeout=STOP_TIMEOUT)
        assert docker_engine.stopped_at(container_id) == stopped

        started = docker_engine.start(container_id)
        assert started.id == container_id and started.running is True
        assert docker_engine.inspect(container_id).running is True
        assert docker_engine.stopped_at(container_id) is None
        assert docker_engine.start(container_id).running is True  # starting again: no-op

    def test_created_container_is_not_running_until_started(
        self, docker_engine: DockerEngine, container_spec: SpecFactory,
        unique_name: NameFactory,
    ) -> None:
        name, volume = unique_name("ctr"), unique_name("vol")
        spec = container_spec(name, {volume: VOLUME_DESTINATION})

        created = docker_engine.create_container(spec)
        assert created.name == name and created.image == spec.image
        assert created.running is False
        assert created.labels.items() >= spec.labels.items()
        assert created.env.items() >= spec.env.items()
        assert set(spec.networks) <= set(created.networks)
        if spec.command is not None:
            assert created.command == spec.command
        assert Mount(destination=VOLUME_DESTINATION, kind="volume",
                     source=volume) in created.mounts
        assert docker_engine.inspect(created.id).running is False
        assert docker_engine.stopped_at(created.id) is None  # created, never stopped
        assert name in docker_engine.container_names()

        started = docker_engine.start(created.id)
        assert started.id == created.id and started.running is True
        assert docker_engine.inspect(name).running is True

    def test_create_container_with_a_taken_name_is_refused(
        self, docker_engine: DockerEngine, container_spec: SpecFactory,
        make_container: ContainerFactory, unique_name: NameFactory,
    ) -> None:
        running, created = unique_name("ctr"), unique_name("ctr")
        make_container(running, {}, unique_name("vol"))
        first = docker_engine.create_container(container_spec(created, {}))

        for name in (running, created):
            with pytest.raises(NameTaken) as caught:
                docker_engine.create_container(container_spec(name, {}))
            assert name in str(caught.value)
        assert docker_engine.inspect(created).id == first.id  # the first one is untouched

    def test_remove_container_by_id_or_name(
        self, docker_engine: DockerEngine, make_container: ContainerFactory,
        unique_name: NameFactory,
    ) -> None:
        by_id, by_name = unique_name("ctr"), unique_name("ctr")
        volume = unique_name("vol")
        container_id = make_container(by_id, {}, volume)
        make_container(by_name, {}, unique_name("vol"))

        docker_engine.remove_container(container_id)  # running: removed by force
        docker_engine.remove_container(by_name)
        for name in (by_id, by_name):
            assert not docker_engine.container_name_taken(name)
            assert name not in docker_engine.container_names()
        with pytest.raises(NotFound):
            docker_engine.inspect(container_id)
        assert docker_engine.volume_exists(volume)  # a named volume outlives its container

    def test_removing_missing_containers_and_volumes_is_a_no_op(
        self, docker_engine: DockerEngine, unique_name: NameFactory,
    ) -> None:
        docker_engine.remove_container(unique_name("missing"))
        docker_engine.remove_volume(unique_name("missing"))

    # --- networks and published ports ----------------------------------------------

    def test_a_port_of_a_container_on_an_internal_network_is_not_published(
        self, docker_engine: DockerEngine, container_spec: SpecFactory,
        unique_name: NameFactory,
    ) -> None:
        # Docker creates and starts it and silently publishes nothing
        # (moby/moby#36174); a restore asked to publish there is refused up front.
        spec = container_spec(unique_name("ctr"), {})
        network = spec.networks[0]
        assert docker_engine.network_exists(network)
        assert docker_engine.network_internal(network)
        missing = unique_name("net")
        assert (docker_engine.network_exists(missing),
                docker_engine.network_internal(missing)) == (False, False)

        started = docker_engine.start_container(replace(
            spec, published=(PublishedPort(container_port=5432, host_port=0),)))

        assert docker_engine.container_endpoints(started.id).ports == {}
        assert network in docker_engine.container_endpoints(started.id).networks

    def test_created_networks_are_internal_as_asked_and_listed_with_their_labels(
        self, docker_engine: DockerEngine, unique_name: NameFactory,
    ) -> None:
        internal, bridged = unique_name("net"), unique_name("net")
        marked = {"holdfast.test": "1", "holdfast.contract": internal}
        try:
            docker_engine.create_network(internal, internal=True, labels=marked)
            docker_engine.create_network(bridged, internal=False, labels={"holdfast.test": "1"})
            assert docker_engine.network_exists(internal) and docker_engine.network_exists(bridged)
            assert docker_engine.network_internal(internal) is True
            assert docker_engine.network_internal(bridged) is False
            listed = docker_engine.labelled_networks("holdfast.contract")
            assert listed.get(internal) == marked  # every label, not just the one asked for
            assert bridged not in listed
        finally:
            docker_engine.remove_network(internal)
            docker_engine.remove_network(bridged)
        assert not docker_engine.network_exists(internal)
        assert internal not in docker_engine.labelled_networks("holdfast.contract")

    def test_a_second_network_of_one_name_is_refused_and_a_missing_one_removes_quietly(
        self, docker_engine: DockerEngine, unique_name: NameFactory,
    ) -> None:
        name = unique_name("net")
        try:
            docker_engine.create_network(name, internal=True, labels={"first": "1"})
            with pytest.raises(NameTaken) as caught:
                docker_engine.create_network(name, internal=False, labels={"second": "1"})
            assert name in str(caught.value)
            assert docker_engine.network_internal(name)  # the first one is untouched
            assert docker_engine.labelled_networks("first").get(name) == {"first": "1"}
            assert name not in docker_engine.labelled_networks("second")
        finally:
            docker_engine.remove_network(name)
        docker_engine.remove_network(name)  # gone already: what was asked
        docker_engine.remove_network(unique_name("missing"))

    def test_a_network_with_a_container_on_it_is_not_removed(
        self, docker_engine: DockerEngine, container_spec: SpecFactory,
        unique_name: NameFactory,
    ) -> None:
        network, name = unique_name("net"), unique_name("ctr")
        docker_engine.create_network(network, internal=True, labels={"holdfast.test": "1"})
        try:
            started = docker_engine.start_container(
                replace(container_spec(name, {}), networks=(network,)))
            assert network in docker_engine.container_endpoints(started.id).networks
            with pytest.raises(DockerRefused):
                docker_engine.remove_network(network)
            assert docker_engine.network_exists(network)
            docker_engine.remove_container(started.id)
            docker_engine.remove_network(network)
            assert not docker_engine.network_exists(network)
        finally:
            docker_engine.remove_container(name)
            docker_engine.remove_network(network)

    # --- named volumes -------------------------------------------------------------

    def test_created_volume_is_visible_with_its_labels_and_no_users(
        self, docker_engine: DockerEngine, unique_name: NameFactory,
    ) -> None:
        name = unique_name("vol")
        labels = {"holdfast.test": "1", "team": "data"}
        docker_engine.create_volume(VolumeSpec(name=name, labels=labels))

        assert docker_engine.volume_exists(name)
        assert name in docker_engine.volume_names()
        info = docker_engine.get_volume(name)
        assert info is not None
        assert info.name == name and info.driver == "local"
        assert dict(info.labels) == labels
        assert info.users == () and not info.in_use
        assert info.size_bytes is None  # not asked for
        assert info.created_at is not None and info.created_at.tzinfo is not None

    def test_create_volume_of_an_existing_name_is_refused(
        self, docker_engine: DockerEngine, unique_name: NameFactory,
    ) -> None:
        name = unique_name("vol")
        docker_engine.create_volume(VolumeSpec(name=name, labels={"first": "1"}))
        with pytest.raises(NameTaken) as caught:
            docker_engine.create_volume(VolumeSpec(name=name, labels={"second": "1"}))
        assert name in str(caught.value)
        info = docker_engine.get_volume(name)
        assert info is not None and dict(info.labels) == {"first": "1"}

    def test_missing_volume(self, docker_engine: DockerEngine,
                            unique_name: NameFactory) -> None:
        name = unique_name("missing")
        assert docker_engine.get_volume(name) is None
        assert docker_engine.volume_exists(name) is False
        assert name not in docker_engine.volume_names()
        with pytest.raises(VolumeNotFound) as caught:
            docker_engine.remove_unused_volume(name)
        assert name in str(caught.value)

    def test_mounted_volume_lists_its_user(
        self, docker_engine: DockerEngine, make_container: ContainerFactory,
        unique_name: NameFactory,
    ) -> None:
        name, volume = unique_name("ctr"), unique_name("vol")
        container_id = make_container(name, {}, volume)

        info = docker_engine.get_volume(volume)
        assert info is not None and info.in_use
        assert [(u.name, u.id, u.running) for u in info.users] == [(name, container_id, True)]
        listed = {v.name: v for v in docker_engine.list_volumes(sizes=False)}
        assert volume in listed
        assert listed[volume].users == info.users and listed[volume].size_bytes is None

        docker_engine.stop_container(container_id, timeout=STOP_TIMEOUT)
        info = docker_engine.get_volume(volume)
        assert info is not None
        assert [(u.name, u.running) for u in info.users] == [(name, False)]

    def test_remove_unused_volume_refuses_a_mounted_volume(
        self, docker_engine: DockerEngine, make_container: ContainerFactory,
        unique_name: NameFactory,
    ) -> None:
        volume = unique_name("vol")
        container_id = make_container(unique_name("ctr"), {}, volume)

        with pytest.raises(VolumeInUse) as caught:
            docker_engine.remove_unused_volume(volume)  # mounted by a running container
        assert volume in str(caught.value)
        assert docker_engine.volume_exists(volume)

        docker_engine.stop_container(container_id, timeout=STOP_TIMEOUT)
        with pytest.raises(VolumeInUse) as caught:
            docker_engine.remove_unused_volume(volume)  # a stopped one still holds it
        assert volume in str(caught.value)
        assert docker_engine.volume_exists(volume)

        docker_engine.remove_container(container_id)
        docker_engine.remove_unused_volume(volume)
        assert not docker_engine.volume_exists(volume)

    def test_remove_unused_volume_removes_an_unused_volume(
        self, docker_engine: DockerEngine, unique_name: NameFactory,
    ) -> None:
        name = unique_name("vol")
        docker_engine.create_volume(VolumeSpec(name=name))
        docker_engine.remove_unused_volume(name)
        assert not docker_engine.volume_exists(name)
        assert docker_engine.get_volume(name) is None
        assert name not in docker_engine.volume_names()

    def test_remove_volume_removes_unused_and_refuses_mounted(
        self, docker_engine: DockerEngine, make_container: ContainerFactory,
        unique_name: NameFactory,
    ) -> None:
        unused, mounted = unique_name("vol"), unique_name("vol")
        docker_engine.create_volume(VolumeSpec(name=unused))
        docker_engine.remove_volume(unused)
        assert not docker_engine.volume_exists(unused)

        # A volume a container mounts is not taken from under it, force or not;
        # callers cleaning up (restore, clone) log the refusal and go on.
        make_container(unique_name("ctr"), {}, mounted)
        with pytest.raises(VolumeInUse) as caught:
            docker_engine.remove_volume(mounted)
        assert mounted in str(caught.value)
        assert docker_engine.volume_exists(mounted)

    # --- sizes and images ------------------------------------------------------------

    def test_concurrent_size_listings_all_succeed(
        self, docker_engine: DockerEngine, unique_name: NameFactory,
    ) -> None:
        # Docker runs one disk-usage walk at a time and refuses a second while
        # one runs ("a disk usage operation is already running"): listings of a
        # busy API must share or wait for it, never fail.
        name = unique_name("vol")
        docker_engine.create_volume(VolumeSpec(name=name, labels={"holdfast.test": "1"}))
        sizes: list[int | None] = []
        errors: list[BaseException] = []
        start = threading.Barrier(8)

        def listing() -> None:
            try:
                start.wait(timeout=30)
                listed = {volume.name: volume for volume in docker_engine.list_volumes(sizes=True)}
                sizes.append(listed[name].size_bytes)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=listing) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        assert errors == []
        assert sizes == [0] * 8  # an empty volume, measured

    def test_an_image_on_the_engine_needs_no_pull(
        self, docker_engine: DockerEngine, image: str, make_container: ContainerFactory,
        unique_name: NameFactory,
    ) -> None:
        make_container(unique_name("ctr"), {}, unique_name("vol"))  # the image is there
        docker_engine.ensure_image(image)

    def test_an_image_that_cannot_be_pulled_is_refused_naming_it(
        self, docker_engine: DockerEngine,
    ) -> None:
        # No registry here (or, with one, no such repository): either way the
        # engine's reason, in one line.
        missing = "holdfast-test/does-not-exist:0"
        with pytest.raises(ImagePullFailed) as caught:
            docker_engine.ensure_image(missing)
        message = str(caught.value)
        assert message.startswith(f"cannot pull image {missing}: ")
        assert "\n" not in message and caught.value.image == missing

    # --- swapping (restore --replace) ------------------------------------------------

    def test_settings_report_aliases_published_ports_and_the_restart_policy(
        self, docker_engine: DockerEngine, container_spec: SpecFactory,
        unique_name: NameFactory,
    ) -> None:
        base = container_spec(unique_name("ctr"), {})
        network = base.networks[0]
        # Created, not started: the configured binding is reported, none is made.
        published = (PublishedPort(container_port=7777, host_port=47777, host_ip="127.0.0.1"),)
        spec = replace(base, aliases={network: ("swap-alias",)}, published=published)
        created = docker_engine.create_container(spec)
        assert docker_engine.container_settings(created.id) == ContainerSettings(
            networks={network: ("swap-alias",)}, published=published, restart=NO_RESTART)
        for policy in (RestartPolicy("unless-stopped"), RestartPolicy("on-failure", 3)):
            docker_engine.set_restart_policy(created.id, policy)
            assert docker_engine.container_settings(spec.name).restart == policy

    def test_rename_keeps_the_container_under_its_new_name(
        self, docker_engine: DockerEngine, make_container: ContainerFactory,
        unique_name: NameFactory,
    ) -> None:
        name, renamed = unique_name("ctr"), unique_name("ctr")
        container_id = make_container(name, ENABLE_LABELS, unique_name("vol"))
        docker_engine.rename_container(container_id, renamed)
        seen = docker_engine.inspect(renamed)
        assert (seen.id, seen.name, seen.running) == (container_id, renamed, True)
        assert not docker_engine.container_name_taken(name)
        assert renamed in docker_engine.container_names()

    def test_rename_to_a_taken_name_or_of_a_missing_container_is_refused(
        self, docker_engine: DockerEngine, make_container: ContainerFactory,
        unique_name: NameFactory,
    ) -> None:
        one, other, missing = unique_name("ctr"), unique_name("ctr"), unique_name("missing")
        one_id = make_container(one, {}, unique_name("vol"))
        make_container(other, {}, unique_name("vol"))
        with pytest.raises(NameTaken) as taken:
            docker_engine.rename_container(one_id, other)
        assert other in str(taken.value)
        assert docker_engine.inspect(one_id).name == one
        calls: list[Callable[[], object]] = [
            lambda: docker_engine.rename_container(missing, unique_name("ctr")),
            lambda: docker_engine.set_restart_policy(missing, NO_RESTART),
            lambda: docker_engine.container_settings(missing)]
        for call in calls:
            with pytest.raises(NotFound) as caught:
                call()
            assert missing in str(caught.value)
