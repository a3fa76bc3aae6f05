"""The CLI's commands for instances, backups, snapshots, restores, retention,
targets and the catalog: each parses its input, makes one call of the backend
(:mod:`.backend`: the use cases here, or a daemon's API with ``--server``) and
prints the JSON it answers (a table, or JSON only with ``--json``).

Use cases (and through them pydantic-settings, SQLAlchemy, docker-py) are
imported by the local backend's method that calls them, so ``holdfast --help``
and the commands that need little start at once.
"""

from __future__ import annotations

from typing import Annotated

import typer

from backup import errors
from service.entrypoints.cli.app import (
    IdentityOption,
    JsonFlag,
    app,
    backend,
    catalog_app,
    fail_with,
    load_settings,
    local_only,
    targets_app,
    use_identity,
)
from service.entrypoints.cli.checkpoint_commands import TagOption, tags_or_fail
from service.entrypoints.cli.output import (
    human_bytes,
    last_text,
    moment_text,
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
    local_only("holdfast serve", "run it on the daemon's host without --server")
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
    with backend() as holdfast:
        views = holdfast.list_instances()
    if as_json:
        print_json(views)
        return
    if not views:
        typer.echo("no instances: label a container holdfast.enable=true")
        return
    table([[v["name"], v["container"] or "-", v["status"], v["engine"] or "?",
            v["schedule"] or "-", retention_text(v["retention"]), v["target"],
            moment_text(v["next_run"]), last_text(v["last_snapshot"]),
            "; ".join(v["errors"]) or ""] for v in views],
           ["NAME", "CONTAINER", "STATUS", "ENGINE", "SCHEDULE", "RETENTION", "TARGET",
            "NEXT RUN", "LAST SNAPSHOT", "ERRORS"], keep=("NAME",))


@app.command()
def forget(
    instance: Annotated[str, typer.Argument(help="Instance name (see 'holdfast instances').")],
    as_json: JsonFlag = False,
) -> None:
    """Remove an instance, its policy and its snapshot rows from the catalog. The
    snapshots' objects stay in their targets ('holdfast catalog rebuild' lists them again)."""
    with backend() as holdfast:
        forgotten = holdfast.forget_instance(instance)
    show(as_json, forgotten,
         f"forgot instance {forgotten['instance']} and {len(forgotten['snapshots'])} "
         "snapshot row(s); "
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
    """Take a snapshot now and wait until it is complete; --tag KEY=VALUE tags it.
    With --server, Ctrl-C cancels the daemon's backup job (exit 130)."""
    tags = tags_or_fail(tag)
    with backend() as holdfast:
        snapshot = holdfast.backup(instance, target, tags, pin, Progress(f"backup {instance}"))
    pruned = snapshot.pop("pruned", None) or []
    verifying = snapshot.pop("verification_job", None)
    show(as_json, snapshot,
         f"snapshot {snapshot['id']} complete: {human_bytes(snapshot['size_bytes'])} "
         f"({human_bytes(snapshot['raw_bytes'])} before compression) in target "
         f"{snapshot['target']}" + (f"; retention removed {len(pruned)}" if pruned else "")
         + (f"; verified restore queued as job {verifying}" if verifying else ""))


@app.command()
def snapshots(
    instance: Annotated[str | None, typer.Argument(help="Only this instance.")] = None,
    tag: TagOption = None,
    as_json: JsonFlag = False,
) -> None:
    """List snapshots, newest first; with --tag KEY=VALUE (repeatable), only those
    carrying every tag given."""
    wanted = tags_or_fail(tag)
    with backend() as holdfast:
        found = holdfast.list_snapshots(instance, wanted)
    if as_json:
        print_json(found)
        return
    table([snapshot_row(s) for s in found],
           ["ID", "INSTANCE", "ENGINE", "STATUS", "SIZE", "TARGET", "CREATED", "VERIFIED",
            "TAGS"], keep=("ID",))


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
    warm: Annotated[bool, typer.Option(
        "--warm/--no-warm", help="Clone the volumes of a warm copy of the snapshot when "
        "the engine has one ('holdfast warm ls'), instead of streaming it.")] = True,
    on_host: Annotated[str | None, typer.Option(
        "--host", metavar="HOST", help="Make the copy on this host's engine ('holdfast "
        "hosts'), whose daemon reads the snapshot from a target both share.")] = None,
    identity: IdentityOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Restore a snapshot into a fresh container on fresh volumes; returns once it
    accepts connections. The snapshot's source is never touched. With --replace
    NAME, the restored container then takes NAME's place (--undo-replace swaps back).
    With --server, Ctrl-C cancels the daemon's restore job (exit 130)."""
    from service.entrypoints.cli import replace_commands
    from service.entrypoints.cli.copy_commands import method_text, parse_labels, restore_details

    use_identity(identity)
    if undo_replace is not None:
        replace_commands.undo_replace(undo_replace, snapshot_id, {
            "--name": name, "--replace": replace, "--latest": latest, "--image": image,
            "--force": force, "--network": network, "--alias": alias, "--publish": publish,
            "--label": label, "--ttl": ttl, "--tag": tag}, as_json)
        return
    shown_as = replace_commands.check_restore_arguments(snapshot_id, name, replace)
    assert snapshot_id is not None
    tags = tags_or_fail(tag) if tag else None
    try:
        labels = parse_labels(label)
    except errors.HoldfastError as exc:
        fail_with(exc)
    body = {"name": name, "image": image, "force": force, "network": network,
            "alias": alias, "publish": publish, "labels": labels, "ttl": ttl,
            "replace": replace, "warm": warm, **({"host": on_host} if on_host else {})}
    with backend() as holdfast:
        result = holdfast.restore(snapshot_id, body, Progress(f"restore {shown_as}"),
                                  latest=latest, tags=tags)
    show(as_json, result,
         f"restored {result['snapshot_id']} into container {result['container']} "
         f"(volumes {', '.join(result['volumes'])}, image {result['image']}) "
         f"in {result['seconds']:.1f}s{method_text(result)}" + restore_details(result)
         + replace_commands.replaced_details(result))


@app.command()
def delete(
    snapshot_id: Annotated[str, typer.Argument(
        metavar="SNAPSHOT", help="Snapshot id, or an unambiguous prefix of one, to delete.")],
    as_json: JsonFlag = False,
) -> None:
    """Delete one snapshot from its target and from the catalog."""
    with backend() as holdfast:
        snapshot = holdfast.delete_snapshot(snapshot_id)
    show(as_json, snapshot, f"deleted snapshot {snapshot['id']}")


@app.command()
def prune(
    instance: Annotated[str | None, typer.Argument(help="Only this instance.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="List what would go.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Apply retention (restic forget semantics): failed snapshots and those the
    policy does not keep are deleted; the newest complete and pinned ones never are."""
    with backend() as holdfast:
        results = holdfast.prune(instance, dry_run)
    if as_json:
        print_json(results)
        return
    verb = "would forget" if dry_run else "forgot"
    for result in results:
        forgotten = result["forgotten"]
        typer.echo(f"{result['instance']}: keeping {len(result['kept'])}, {verb} "
                   f"{len(forgotten)}" + (f": {', '.join(forgotten)}" if forgotten else ""))


@targets_app.command("check")
def targets_check(
    names: Annotated[list[str] | None, typer.Argument(help="Only these targets.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Write, read back and delete a probe object in each configured target."""
    with backend() as holdfast:
        results = holdfast.check_targets(names)
    if as_json:
        print_json(results)
    else:
        for result in results:
            verdict = "ok" if result["ok"] else f"FAILED: {result['error']}"
            typer.echo(f"{result['name']}  {result['url']}  {verdict}  "
                       f"({result['seconds']:.2f}s)")
    if not all(result["ok"] for result in results):
        raise typer.Exit(1)


@catalog_app.command("rebuild")
def catalog_rebuild(as_json: JsonFlag = False) -> None:
    """Rebuild the catalog's snapshot list from the manifests in every target."""
    with backend() as holdfast:
        report = holdfast.rebuild_catalog()
    broken = report["broken"]
    show(as_json, report,
         f"catalog rebuilt: {report['added']} added, {report['updated']} updated "
         f"({', '.join(f'{k}: {v}' for k, v in report['targets'].items())})"
         + (f"; {len(broken)} without their data, recorded as failed: "
            f"{', '.join(broken)}" if broken else ""))
    for target, error in report["errors"].items():
        typer.echo(f"holdfast: target {target} was not rebuilt: {error}", err=True)
    if report["errors"]:
        raise typer.Exit(1)
