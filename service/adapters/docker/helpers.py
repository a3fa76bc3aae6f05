"""Helper containers: short-lived containers of the helper image for work on volumes.

:class:`Helpers` implements the helper half of :class:`backup.ports.HelperContainers`:
a helper mounts a container's mounts (``--volumes-from``) or named volumes, has
no network, runs as root, and is removed when its call returns or its stream is
closed, failure included. Each carries :data:`HELPER_LABEL` naming the Holdfast
process that made it, so the helpers a killed process left behind can be told
from those of live ones and removed at start-up. A helper image missing from
the engine is pulled first, as ``docker run`` does (:mod:`.images`).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence

from backup.errors import DockerRefused, ImagePullFailed, NotFound
from backup.ports import ExecResult
from service.adapters.docker.connection import DockerConnection
from service.adapters.docker.exec import Exec
from service.adapters.docker.images import Images
from service.runs import current_runner, may_be_running

HELPER_LABEL = "io.holdfast.helper"
# Any image with sh and GNU tar works; this one is on every registry mirror.
DEFAULT_HELPER_IMAGE = "debian:bookworm-slim"


class Helpers:
    """Helper containers of ``image`` on one engine, run through ``executor``."""

    def __init__(self, connection: DockerConnection, executor: Exec,
                 image: str = DEFAULT_HELPER_IMAGE, images: Images | None = None) -> None:
        self._connection = connection
        self._exec = executor
        self._images = images or Images(connection)
        self.image = image

    def _create_helper(self, volumes_from: str | None, volumes: Mapping[str, str] | None,
                       read_only: bool) -> str:
        """Start a helper whose main process only sleeps; the work then runs in
        it through the same exec plumbing (stdin, stderr tail, exit codes) as in
        any container. Returns its id; the caller removes it."""
        mode = "ro" if read_only else "rw"
        host_config = self._connection.api.create_host_config(
            binds={name: {"bind": destination, "mode": mode}
                   for name, destination in (volumes or {}).items()},
            volumes_from=[f"{volumes_from}:{mode}"] if volumes_from else None,
            network_mode="none", auto_remove=False,
        )

        def create() -> str:
            created = self._connection.call(lambda: self._connection.api.create_container(
                self.image, command=["sleep", "infinity"], entrypoint=[],
                labels={HELPER_LABEL: current_runner()}, host_config=host_config, user="0:0",
                volumes=list((volumes or {}).values()) or None, detach=True,
                name=f"holdfast-helper-{uuid.uuid4().hex[:12]}",
            ))
            return str(created["Id"])

        try:
            helper_id = create()
        except NotFound:
            if self._images.present(self.image):
                raise  # something else is missing (the container of volumes_from)
            self.pull_image()
            helper_id = create()
        try:
            self._connection.call(lambda: self._connection.api.start(helper_id))
        except BaseException as exc:
            self._remove_helper(helper_id)
            if isinstance(exc, DockerRefused):
                raise type(exc)(f"cannot start a helper container: {exc}") from exc
            raise
        return helper_id

    def pull_image(self) -> None:
        """Pull the helper image if the engine lacks it (as ``docker run`` would);
        :class:`ImagePullFailed` names HOLDFAST_HELPER_IMAGE when it cannot."""
        try:
            self._images.ensure_image(self.image)
        except ImagePullFailed as exc:
            raise ImagePullFailed(exc.image, exc.reason, helper=True) from exc

    def _remove_helper(self, helper_id: str) -> None:
        # Never v=True: a helper mounts the user's volumes (--volumes-from),
        # anonymous ones included, and must not take them along.
        with contextlib.suppress(NotFound):
            self._connection.call(
                lambda: self._connection.api.remove_container(helper_id, force=True))

    def remove_orphan_helpers(self) -> list[str]:
        """Remove helper containers whose Holdfast process is gone (killed
        mid-archive); those of live processes, here or on other hosts, stay."""
        removed = []
        for summary in self._connection.call(lambda: self._connection.api.containers(
                all=True, filters={"label": HELPER_LABEL})):
            runner = (summary.get("Labels") or {}).get(HELPER_LABEL)
            if not may_be_running(runner):
                self._remove_helper(summary["Id"])
                removed.append(summary["Id"])
        return removed

    def helper_stream(self, argv: Sequence[str], *, volumes_from: str | None = None,
                      volumes: Mapping[str, str] | None = None,
                      read_only: bool = True) -> Iterator[bytes]:
        helper_id = self._create_helper(volumes_from, volumes, read_only)
        try:
            yield from self._exec.stream(helper_id, argv)
        finally:
            self._remove_helper(helper_id)

    def helper_run(self, argv: Sequence[str], *, volumes_from: str | None = None,
                   volumes: Mapping[str, str] | None = None, read_only: bool = False,
                   stdin: Iterable[bytes] | None = None, check: bool = True) -> ExecResult:
        helper_id = self._create_helper(volumes_from, volumes, read_only)
        try:
            return self._exec.run(helper_id, argv, stdin=stdin, check=check)
        finally:
            self._remove_helper(helper_id)
