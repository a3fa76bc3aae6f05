"""The CLI's commands for instances, backups, snapshots, restores, retention,
targets and the catalog: each opens the services, calls one use case and prints
its result (a table, or JSON only with ``--json``).

Use cases (and through them pydantic-settings, SQLAlchemy, docker-py) are
imported inside the command that calls them, so ``holdfast --help`` and the
commands that need little start at once.
"""

from __future__ import annotations

from typing import Annotated

import typer

from backup import errors
from service.entrypoints.cli.app import (
    JsonFlag,
    app,
    catalog_app,
    fail_with,
    load_settings,
    open_services,
    targets_app,
)
from service.entrypoints.cli.checkpoint_commands import TagOption, choose_restore, tags_or_fail
from service.entrypoints.cli.output import (
    human_bytes,
    last_text,
    print_json,
    retention_text,
    show,
    snapshot_row,
    table,
)
from service.entrypoints.cli.progress import Progress


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(
        help="Address to listen on (every /v1 request needs a token: holdfast tokens "
             "create).")] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on.")] = None,
    insecure_no_auth: Annotated[bool, typer.Option(
        "--insecure-no-auth",
        help="Serve without authentication: every request is admin; anyone who can "
             "reach it can restore, delete and remove volumes.")] = False,
) -> None:
    """Run the daemon: the HTTP API on 127.0.0.1:8420 by default."""
    settings = load_settings()
    if insecure_no_auth:
        settings = settings.model_copy(update={"api_insecure_no_auth": True})
    from service.entrypoints.daemon import run_daemon

    try:
        run_daemon(settings, host=host, port=port)
    except errors.HoldfastError as exc:
        fail_with(exc)


@app.command()
def instances(as_json: JsonFlag = False) -> None:
    """List discovered instances: name, container, engine, schedule, target, last snapshot."""
    from service.usecases import instances as instance_cases

    with open_services() as services:
        views = instance_cases.list_instances(services)
    if as_json:
        print_json([view.to_json() for view in views])
        return
    if not views:
        typer.echo("no instances: label a container holdfast.enable=true")
        return
    table([[v.name, v.container or "-", v.status, v.engine or "?", v.schedule or "-",
             retention_text(v.retention), v.target,
             v.next_run.strftime("%Y-%m-%d %H:%M:%SZ") if v.next_run else "-",
             last_text(v.last_snapshot), "; ".join(v.errors) or ""] for v in views],
           ["NAME", "CONTAINER", "STATUS", "ENGINE", "SCHEDULE", "RETENTION", "TARGET",
            "NEXT RUN", "LAST SNAPSHOT", "ERRORS"], keep=("NAME",))


@app.command()
def forget(
    instance: Annotated[str, typer.Argument(help="Instance name (see 'holdfast instances').")],
    as_json: JsonFlag = False,
) -> None:
    """Remove an instance, its policy and its snapshot rows from the catalog. The
    snapshots' objects stay in their targets ('holdfast catalog rebuild' lists them again)."""
    from service.usecases import instances as instance_cases

    with open_services() as services:
        forgotten = instance_cases.forget_instance(services, instance)
    show(as_json, forgotten.to_json(),
         f"forgot instance {forgotten.instance} and {len(forgotten.snapshots)} snapshot row(s); "
         "their objects stay in the targets ('holdfast catalog rebuild' lists them again)")


@app.command()
def backup(
    instance: Annotated[str, typer.Argument(help="Instance name (see 'holdfast instances').")],
    target: Annotated[str | None, typer.Option(help="Storage target to write to.")] = None,
    tag: TagOption = None,
    pin: Annotated[bool, typer.Option(
        "--pin", help="Pin the snapshot: retention never removes it ('holdfast unpin' "
                      "undoes it).")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Take a snapshot now and wait until it is complete; --tag KEY=VALUE tags it."""
    from service.usecases import backups

    with open_services() as services:
        request = backups.prepare_backup(services, instance, target, tags=tags_or_fail(tag),
                                         pin=pin)
        with Progress(f"backup {instance}") as progress:
            snapshot, pruned = backups.backup_then_prune(services, request, progress)
    show(as_json, snapshot.to_json(),
         f"snapshot {snapshot.id} complete: {human_bytes(snapshot.size_bytes)} "
         f"({human_bytes(snapshot.raw_bytes)} before compression) in target "
         f"{snapshot.target}" + (f"; retention removed {len(pruned)}" if pruned else ""))


@app.command()
def snapshots(
    instance: Annotated[str | None, typer.Argument(help="Only this instance.")] = None,
    tag: TagOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List snapshots, newest first; with --tag KEY=VALUE (repeatable), only those
    carrying every tag given."""
    from service.usecases import snapshots as snapshot_cases

    wanted = tags_or_fail(tag)
    with open_services() as services:
        found = snapshot_cases.list_snapshots(services, instance, wanted)
    if as_json:
        print_json([snapshot.to_json() for snapshot in found])
        return
    table([snapshot_row(s) for s in found],
           ["ID", "INSTANCE", "ENGINE", "STATUS", "SIZE", "TARGET", "CREATED", "TAGS"],
           keep=("ID",))


@app.command()
def restore(
    snapshot_id: Annotated[str | None, typer.Argument(
        metavar="SNAPSHOT", help="Snapshot id or an unambiguous prefix of one (at least 6 "
        "characters; see 'holdfast snapshots'); with --latest or --tag, an instance "
        "name.")] = None,
    name: Annotated[str | None, typer.Option(
        "--name", help="Name of the fresh container (needed unless --replace).")] = None,
    replace: Annotated[str | None, typer.Option(
        "--replace", metavar="NAME", help="Swap the restore in for container NAME once it "
        "is loaded: NAME is stopped and kept as NAME-replaced-<time>, the restored one "
        "takes its name, networks, aliases, ports, labels and restart policy.")] = None,
    undo_replace: Annotated[str | None, typer.Option(
        "--undo-replace", metavar="NAME", help="Swap the newest NAME-replaced-<time> back "
        "in (NAME is kept stopped as NAME-undone-<time>); takes no SNAPSHOT.")] = None,
    latest: Annotated[bool, typer.Option(
        "--latest", help="Restore the newest complete snapshot of the instance named "
                         "instead of a snapshot id.")] = False,
    tag: Annotated[list[str] | None, typer.Option(
        "--tag", metavar="KEY=VALUE", help="Restore the newest complete snapshot of the "
        "instance named that carries this tag (repeatable: every one).")] = None,
    image: Annotated[str | None, typer.Option(help="Image instead of the recorded one.")] = None,
    force: Annotated[bool, typer.Option(
        "--force", help="Replace the contents of volumes NEW-* that already exist "
                        "(never of one a container uses).")] = False,
    network: Annotated[str | None, typer.Option(
        help="Join this existing Docker network instead of the recorded ones.")] = None,
    alias: Annotated[str | None, typer.Option(
        help="DNS alias of the container on --network.")] = None,
    publish: Annotated[str | None, typer.Option(
        help="Publish the database's port on the host: 0 for a free port, or PORT, "
             "bound to 127.0.0.1 unless given as HOST:PORT.")] = None,
    label: Annotated[list[str] | None, typer.Option(
        help="Extra container label KEY=VALUE (repeatable; not holdfast.*).")] = None,
    ttl: Annotated[str | None, typer.Option(
        help="Remove the copy this long after it is ready (1m to 365d, e.g. 4h); "
             "the daemon does it ('holdfast copies ls').")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Restore a snapshot into a fresh container on fresh volumes; returns once it
    accepts connections. The snapshot's source is never touched. With --replace
    NAME, the restored container then takes NAME's place (--undo-replace swaps back)."""
    from restore.copies import RestoreOptions
    from service.entrypoints.cli import replace_commands
    from service.entrypoints.cli.copy_commands import parse_labels, restore_details
    from service.usecases import restores

    if undo_replace is not None:
        replace_commands.undo_replace(undo_replace, snapshot_id, {
            "--name": name, "--replace": replace, "--latest": latest, "--image": image,
            "--force": force, "--network": network, "--alias": alias, "--publish": publish,
            "--label": label, "--ttl": ttl, "--tag": tag}, as_json)
        return
    shown_as = replace_commands.check_restore_arguments(snapshot_id, name, replace)
    assert snapshot_id is not None
    prepare = choose_restore(latest, tag)
    with open_services() as services:
        options = RestoreOptions(network=network, alias=alias, publish=publish,
                                 labels=parse_labels(label), ttl=ttl)
        request = prepare(services, snapshot_id, name, image, force, options, replace)
        with Progress(f"restore {shown_as}") as progress:
            result = restores.execute_restore(services, request, progress)
    show(as_json, result.to_json(),
         f"restored {result.snapshot_id} into container {result.container} "
         f"(volumes {', '.join(result.volumes)}, image {result.image}) "
         f"in {result.seconds:.1f}s" + restore_details(result.to_json())
         + replace_commands.replaced_details(result.to_json()))


@app.command()
def delete(
    snapshot_id: Annotated[str, typer.Argument(
        metavar="SNAPSHOT", help="Snapshot id, or an unambiguous prefix of one, to delete.")],
    as_json: JsonFlag = False,
) -> None:
    """Delete one snapshot from its target and from the catalog."""
    from service.usecases import snapshots as snapshot_cases

    with open_services() as services:
        snapshot = snapshot_cases.delete_snapshot(services, snapshot_id)
    show(as_json, snapshot.to_json(),
         f"deleted snapshot {snapshot.id}")


@app.command()
def prune(
    instance: Annotated[str | None, typer.Argument(help="Only this instance.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would go.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Apply retention (restic forget semantics): failed snapshots and those the
    policy does not keep are deleted; the newest complete and pinned ones never are."""
    from service.usecases import retention

    with open_services() as services:
        results = retention.prune(services, instance, dry_run=dry_run)
    if as_json:
        print_json([result.to_json() for result in results])
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
    from service.usecases import targets

    with open_services() as services:
        results = targets.check_targets(services, names)
    if as_json:
        print_json([result.to_json() for result in results])
    else:
        for result in results:
            verdict = "ok" if result.ok else f"FAILED: {result.error}"
            typer.echo(f"{result.name}  {result.url}  {verdict}  ({result.seconds:.2f}s)")
    if not all(result.ok for result in results):
        raise typer.Exit(1)


@catalog_app.command("rebuild")
def catalog_rebuild(as_json: JsonFlag = False) -> None:
    """Rebuild the catalog's snapshot list from the manifests in every target."""
    from service.usecases import snapshots as snapshot_cases

    with open_services() as services:
        report = snapshot_cases.rebuild_catalog(services)
    show(as_json, report.to_json(),
         f"catalog rebuilt: {report.added} added, {report.updated} updated "
         f"({', '.join(f'{k}: {v}' for k, v in report.targets.items())})"
         + (f"; {len(report.broken)} without their data, recorded as failed: "
            f"{', '.join(report.broken)}" if report.broken else ""))
    for target, error in report.errors.items():
        typer.echo(f"holdfast: target {target} was not rebuilt: {error}", err=True)
    if report.errors:
        raise typer.Exit(1)
