"""The ``holdfast`` command line.

Each command builds the settings and services once, calls one use case and
prints the result: a readable table, or JSON only with ``--json``. Failures
print one line on stderr (``holdfast: <what went wrong and what to do>``) and
exit non-zero: 2 bad input, 3 not found, 4 conflict (a name taken, a run in
progress, a container not running), 5 Docker or storage unreachable, 1 any other
failure.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any, NoReturn

import typer
from pydantic import ValidationError

from backup import errors
from backup.types import Snapshot, utcnow
from backup.volumes import VolumeInfo
from service import usecases, volumes
from service.bootstrap import Services, bootstrap
from service.logs import configure_logging
from service.settings import Settings

app = typer.Typer(
    name="holdfast",
    help="Snapshots and restores for databases running in Docker containers.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
catalog_app = typer.Typer(help="Catalog maintenance.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
targets_app = typer.Typer(help="Storage targets.", no_args_is_help=True)
app.add_typer(targets_app, name="targets")
volumes_app = typer.Typer(help="Named volumes: list, create, remove, clone.",
                          no_args_is_help=True)
app.add_typer(volumes_app, name="volumes")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]

_EXIT_FOR: list[tuple[type[errors.HoldfastError], int]] = [
    (errors.NotFound, 3),
    (errors.Conflict, 4),
    (errors.ContainerError, 4),
    (errors.InvalidInput, 2),
    (errors.StoragePermissionDenied, 2),
    (errors.DockerUnavailable, 5),
    (errors.StorageUnavailable, 5),
]


def exit_code_for(exc: errors.HoldfastError) -> int:
    for kind, code in _EXIT_FOR:
        if isinstance(exc, kind):
            return code
    return 1


def _fail(message: str, code: int) -> NoReturn:
    typer.echo(f"holdfast: {message}", err=True)
    raise typer.Exit(code)


@contextlib.contextmanager
def _services() -> Iterator[Services]:
    """Settings and services for one command, with errors turned into one line."""
    try:
        settings = Settings.load()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "HOLDFAST_" + str(first["loc"][0]).upper() if first["loc"] else "settings"
        _fail(f"{field}: {first['msg']}", 2)
    except errors.HoldfastError as exc:
        _fail(str(exc), exit_code_for(exc))
    configure_logging(settings.log_level if settings.log_level != "INFO" else "WARNING",
                      settings.log_format)
    services = None
    try:
        services = bootstrap(settings)
        yield services
    except errors.HoldfastError as exc:
        _fail(str(exc), exit_code_for(exc))
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    finally:
        if services is not None:
            services.close()


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2))


def _table(rows: list[list[str]], headers: list[str]) -> None:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows,
                                                                          strict=False)]
    for row in [headers, *rows]:
        typer.echo("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths,
                                                                           strict=False)).rstrip())


def _human_bytes(count: float | None) -> str:
    if count is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if count < 1024 or unit == "TiB":
            return f"{count:.1f} {unit}" if unit != "B" else f"{int(count)} B"
        count /= 1024
    return f"{count:.1f} TiB"


def _progress(label: str) -> Callable[[int, float], None]:
    """A progress line on stderr: rewritten in place on a terminal, one line
    every few seconds otherwise (logs, CI)."""
    interactive = sys.stderr.isatty()
    printed_at = [0.0]  # elapsed seconds of the last line, on the transfer's own clock

    def report(done: int, elapsed: float) -> None:
        rate = done / elapsed if elapsed > 0 else 0.0
        line = f"{label}: {_human_bytes(done)} at {_human_bytes(rate)}/s, {elapsed:.0f}s"
        if interactive:
            sys.stderr.write("\r" + line.ljust(70))
            sys.stderr.flush()
        elif elapsed - printed_at[0] >= 5:
            printed_at[0] = elapsed
            sys.stderr.write(line + "\n")

    return report


def _end_progress() -> None:
    if sys.stderr.isatty():
        sys.stderr.write("\n")


# --- commands ---------------------------------------------------------------------


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Address to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
) -> None:
    """Run the daemon: the HTTP API on 127.0.0.1:8420 by default."""
    from service.daemon import run_daemon

    try:
        settings = Settings.load()
    except (ValidationError, errors.HoldfastError) as exc:
        _fail(str(exc).splitlines()[0], 2)
    try:
        run_daemon(settings, host=host, port=port)
    except errors.HoldfastError as exc:
        _fail(str(exc), exit_code_for(exc))


@app.command()
def instances(as_json: JsonFlag = False) -> None:
    """List discovered instances: name, container, engine, schedule, target, last snapshot."""
    from service.scheduler import estimate_next_run

    with _services() as services:
        def next_run(name: str, schedule: str | None) -> datetime | None:
            latest = services.catalog.latest_snapshot(name)
            return estimate_next_run(schedule, latest.created_at if latest else None, utcnow())

        views = usecases.list_instances(services, next_run)
    if as_json:
        _print_json([view.to_json() for view in views])
        return
    if not views:
        typer.echo("no instances: label a container holdfast.enable=true")
        return
    _table([[v.name, v.container or "-", v.status, v.engine or "?", v.schedule or "-",
             _retention_text(v.retention), v.target,
             v.next_run.strftime("%Y-%m-%d %H:%M:%SZ") if v.next_run else "-",
             _last_text(v.last_snapshot), "; ".join(v.errors) or ""] for v in views],
           ["NAME", "CONTAINER", "STATUS", "ENGINE", "SCHEDULE", "RETENTION", "TARGET",
            "NEXT RUN", "LAST SNAPSHOT", "ERRORS"])


def _retention_text(retention: dict[str, int]) -> str:
    return ",".join(f"{key}={value}" for key, value in retention.items()) or "all"


def _last_text(last: dict[str, Any] | None) -> str:
    return f"{last['id']} ({last['status']})" if last else "-"


@app.command()
def backup(
    instance: Annotated[str, typer.Argument(help="Instance name (see 'holdfast instances').")],
    target: Annotated[str | None, typer.Option(help="Storage target to write to.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Take a snapshot now and wait until it is complete."""
    with _services() as services:
        request = usecases.prepare_backup(services, instance, target)
        try:
            snapshot, pruned = usecases.backup_then_prune(
                services, request, _progress(f"backup {instance}"))
        finally:
            _end_progress()
    if as_json:
        _print_json(snapshot.to_json())
    else:
        typer.echo(f"snapshot {snapshot.id} complete: {_human_bytes(snapshot.size_bytes)} "
                   f"({_human_bytes(snapshot.raw_bytes)} before compression) in target "
                   f"{snapshot.target}" + (f"; retention removed {len(pruned)}" if pruned else ""))


@app.command()
def snapshots(
    instance: Annotated[str | None, typer.Argument(help="Only this instance.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """List snapshots, newest first."""
    with _services() as services:
        found = usecases.list_snapshots(services, instance)
    if as_json:
        _print_json([snapshot.to_json() for snapshot in found])
        return
    _table([_snapshot_row(s) for s in found],
           ["ID", "INSTANCE", "ENGINE", "STATUS", "SIZE", "TARGET", "CREATED"])


def _snapshot_row(snapshot: Snapshot) -> list[str]:
    status = str(snapshot.status)
    if snapshot.error:
        status += f" ({snapshot.error[:60]})"
    return [snapshot.id, snapshot.instance, snapshot.engine, status,
            _human_bytes(snapshot.size_bytes), snapshot.target,
            snapshot.created_at.strftime("%Y-%m-%d %H:%M:%SZ")]


@app.command()
def restore(
    snapshot_id: Annotated[str, typer.Argument(help="Snapshot id (see 'holdfast snapshots').")],
    name: Annotated[str, typer.Option("--name", help="Name of the fresh container.")],
    image: Annotated[str | None, typer.Option(help="Image instead of the recorded one.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace the contents of volumes NEW-* that already exist "
                        "(never of one a container uses).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Restore a snapshot into a fresh container on fresh volumes; returns once it
    accepts connections. The snapshot's source is never touched."""
    with _services() as services:
        request = usecases.prepare_restore(services, snapshot_id, name, image, force)
        try:
            result = usecases.execute_restore(services, request, _progress(f"restore {name}"))
        finally:
            _end_progress()
    if as_json:
        _print_json(result.to_json())
    else:
        typer.echo(f"restored {result.snapshot_id} into container {result.container} "
                   f"(volumes {', '.join(result.volumes)}, image {result.image}) "
                   f"in {result.seconds:.1f}s")


@app.command()
def delete(
    snapshot_id: Annotated[str, typer.Argument(help="Snapshot id to delete.")],
    as_json: JsonFlag = False,
) -> None:
    """Delete one snapshot from its target and from the catalog."""
    with _services() as services:
        snapshot = usecases.delete_snapshot(services, snapshot_id)
    if as_json:
        _print_json(snapshot.to_json())
    else:
        typer.echo(f"deleted snapshot {snapshot.id}")


@app.command()
def prune(
    instance: Annotated[str | None, typer.Argument(help="Only this instance.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would go.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Apply retention (restic forget semantics): failed snapshots and those the
    policy does not keep are deleted; the newest complete and pinned ones never are."""
    with _services() as services:
        results = usecases.prune(services, instance, dry_run=dry_run)
    if as_json:
        _print_json([result.to_json() for result in results])
        return
    verb = "would forget" if dry_run else "forgot"
    for result in results:
        typer.echo(f"{result.instance}: keeping {len(result.kept)}, {verb} "
                   f"{len(result.forgotten)}" + (f": {', '.join(result.forgotten)}"
                                                 if result.forgotten else ""))


@targets_app.command("check")
def targets_check(
    names: Annotated[list[str] | None, typer.Argument(help="Only these targets.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write, read back and delete a probe object in each configured target."""
    with _services() as services:
        results = usecases.check_targets(services, names)
    if as_json:
        _print_json([result.to_json() for result in results])
    else:
        for result in results:
            verdict = "ok" if result.ok else f"FAILED: {result.error}"
            typer.echo(f"{result.name}  {result.url}  {verdict}  ({result.seconds:.2f}s)")
    if not all(result.ok for result in results):
        raise typer.Exit(1)


def _volume_row(volume: VolumeInfo) -> list[str]:
    users = ", ".join(user.describe() for user in volume.users) or "-"
    labels = ",".join(f"{k}={v}" for k, v in sorted(volume.labels.items())) or "-"
    return [volume.name, _human_bytes(volume.size_bytes), users, labels]


def _parse_labels(pairs: list[str] | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise errors.InvalidInput(f"--label {pair!r}: write it as KEY=VALUE")
        labels[key] = value
    return labels


@volumes_app.command("ls")
def volumes_ls(
    no_size: Annotated[bool, typer.Option("--no-size", help="Skip measuring sizes (faster).")]
    = False,
    as_json: JsonFlag = False,
) -> None:
    """Named volumes with their size, the containers using them, and labels."""
    with _services() as services:
        found = volumes.list_volumes(services, sizes=not no_size)
    if as_json:
        _print_json([volume.to_json() for volume in found])
        return
    _table([_volume_row(v) for v in found], ["VOLUME", "SIZE", "USED BY", "LABELS"])


@volumes_app.command("create")
def volumes_create(
    name: Annotated[str, typer.Argument(help="Name of the new volume.")],
    label: Annotated[list[str] | None, typer.Option(
        "--label", help="KEY=VALUE label; repeat for more.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Create an empty named volume; an existing name is refused."""
    with _services() as services:
        volume = volumes.create_volume(services, name, _parse_labels(label))
    if as_json:
        _print_json(volume.to_json())
    else:
        typer.echo(f"created volume {volume.name}")


@volumes_app.command("rm")
def volumes_rm(
    name: Annotated[str, typer.Argument(help="Volume to remove.")],
    as_json: JsonFlag = False,
) -> None:
    """Remove a volume and its data; refused while any container uses it."""
    with _services() as services:
        volume = volumes.remove_volume(services, name)
    if as_json:
        _print_json(volume.to_json())
    else:
        typer.echo(f"removed volume {volume.name}")


@volumes_app.command("clone")
def volumes_clone(
    source: Annotated[str, typer.Argument(help="Volume to copy.")],
    target: Annotated[str, typer.Argument(help="New volume to create.")],
    force: Annotated[bool, typer.Option(
        "--force", help="Replace the contents of TARGET if it exists (not while in use).")]
    = False,
    as_json: JsonFlag = False,
) -> None:
    """Copy a volume into a new one through a short-lived helper container;
    owners, modes, links and sparse files are kept."""
    with _services() as services:
        result = volumes.clone_volume(services, source, target, force)
    if as_json:
        _print_json(result.to_json())
    else:
        typer.echo(f"cloned {result.source} into {result.target} "
                   f"({_human_bytes(result.size_bytes)}) in {result.seconds:.1f}s")


@catalog_app.command("rebuild")
def catalog_rebuild(as_json: JsonFlag = False) -> None:
    """Rebuild the catalog's snapshot list from the manifests in every target."""
    with _services() as services:
        report = usecases.rebuild_catalog(services)
    if as_json:
        _print_json(report.to_json())
    else:
        typer.echo(f"catalog rebuilt: {report.added} added, {report.updated} updated "
                   f"({', '.join(f'{k}: {v}' for k, v in report.targets.items())})")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
