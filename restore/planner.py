"""Restore planning: a pure function from a manifest and the current names on the
engine to the container and volumes a restore will create.

"Decide, then apply": :func:`plan_restore` decides everything that can be
decided without touching Docker (names, mounts, environment, what is missing)
and raises before anything is created, so bad input changes nothing.
:mod:`restore.runner` then applies the plan.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from backup.errors import InvalidName, MissingCredentials, NameTaken, VolumeInUse
from backup.names import VOLUME_NAME_MAX, check_container_name, is_volume_name, shown
from backup.ports import ContainerSpec, VolumeSpec
from backup.types import Manifest, fill_command
from restore.copies import CopyOptions

RESTORED_FROM_LABEL = "holdfast.restored-from"
SOURCE_INSTANCE_LABEL = "holdfast.source-instance"
# Docker's built-in networks are not recreated by name; a restored container
# joins user-defined networks only.
_BUILTIN_NETWORKS = frozenset({"bridge", "host", "none", "default"})


@dataclass(frozen=True)
class RestorePlan:
    snapshot_id: str
    container: ContainerSpec
    volumes: tuple[VolumeSpec, ...]
    reused_volumes: tuple[str, ...] = ()
    """Existing volumes ``--force`` allowed: emptied, not created, and kept on failure."""

    @property
    def volume_names(self) -> list[str]:
        return [volume.name for volume in self.volumes]


def _networks(manifest: Manifest, options: CopyOptions) -> tuple[str, ...]:
    """The network ``options`` ask for (its aliases, ports and labels go on the
    container too), else the user-defined networks the source was on."""
    if options.network is not None:
        return (options.network,)
    return tuple(n for n in manifest.networks if n not in _BUILTIN_NETWORKS)


def volume_name_for(container_name: str, destination: str, only_one: bool) -> str:
    if only_one:
        return f"{container_name}-data"
    slug = re.sub(r"[^a-zA-Z0-9]+", "-", destination).strip("-").lower() or "root"
    return f"{container_name}-{slug}"


def plan_restore(
    manifest: Manifest,
    *,
    new_name: str,
    default_data_paths: Sequence[str],
    secret_values: Mapping[str, str],
    taken_container_names: Collection[str],
    existing_volumes: Collection[str],
    image: str | None = None,
    force: bool = False,
    volume_users: Mapping[str, Collection[str]] | None = None,
    options: CopyOptions | None = None,
) -> RestorePlan:
    """Decide the fresh container and volumes for restoring ``manifest`` as ``new_name``.

    Raises :class:`InvalidName` for an unusable name, :class:`NameTaken` if the
    container name or any volume name it needs is in use (a restore never
    writes into something that exists unless ``force`` is given, and then
    never into a volume any container in ``volume_users`` mounts:
    :class:`VolumeInUse`), and :class:`MissingCredentials` if a secret the
    source container had cannot be supplied. ``options``: see :func:`_networks`.
    """
    check_container_name(new_name)
    if new_name in taken_container_names:
        raise NameTaken(f"a container named {new_name} already exists; choose another --name")

    destinations = sorted(
        {mount.destination for mount in manifest.mounts if mount.kind in ("volume", "bind")}
    ) or sorted(set(default_data_paths))
    volumes = {
        volume_name_for(new_name, destination, len(destinations) == 1): destination
        for destination in destinations
    }
    for volume_name, destination in volumes.items():
        if not is_volume_name(volume_name):  # a very long mount path
            raise InvalidName(
                f"the volume for {shown(destination)} would be named {shown(volume_name)}, "
                f"over Docker's {VOLUME_NAME_MAX} characters; choose a shorter --name")
    clashing = sorted(set(volumes) & set(existing_volumes))
    if clashing and not force:
        raise NameTaken(
            f"volume {', '.join(clashing)} already exists; choose another --name, "
            "or pass --force to replace its contents"
        )
    for name in clashing:
        users = sorted((volume_users or {}).get(name, ()))
        if users:
            raise VolumeInUse(
                f"volume {name} is used by container {', '.join(users)}; remove "
                "that container first (--force never writes under a container)"
            )

    missing = [name for name in (*manifest.secret_env, *manifest.secret_args)
               if not secret_values.get(name)]
    if missing:
        raise MissingCredentials(
            f"snapshot {manifest.snapshot_id} needs {', '.join(missing)} for the new container, "
            "and its source container is gone: export them in Holdfast's environment and retry"
        )
    env = dict(manifest.env)
    env.update({name: secret_values[name] for name in manifest.secret_env})

    labels = {RESTORED_FROM_LABEL: manifest.snapshot_id, SOURCE_INSTANCE_LABEL: manifest.instance}
    extra = options or CopyOptions()
    return RestorePlan(
        snapshot_id=manifest.snapshot_id,
        container=ContainerSpec(
            name=new_name,
            image=image or manifest.image,
            env=env,
            volumes=volumes,
            labels={**extra.labels, **labels},
            networks=_networks(manifest, extra),
            command=fill_command(manifest.command, secret_values) if manifest.command else None,
            aliases={extra.network: extra.aliases} if extra.network and extra.aliases else {},
            published=extra.published,
        ),
        volumes=tuple(VolumeSpec(name=name, labels=labels) for name in volumes),
        reused_volumes=tuple(clashing),
    )
