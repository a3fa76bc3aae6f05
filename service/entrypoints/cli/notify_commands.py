"""``holdfast notify``: test a channel, list recent deliveries, list the channels.

Against the catalog and this machine's ``HOLDFAST_NOTIFY_*`` settings, or with
``--server`` through the daemon's ``/v1/notifications`` (the channels are the
daemon's then). ``notify test`` exits 0 once the channel accepted the message
and 5 with the channel's one-line reason when it did not; either way the
attempt is recorded with the other deliveries. As in :mod:`.commands`, each
command is one call of the backend.
"""

from __future__ import annotations

from typing import Annotated

import typer

from service.entrypoints.cli.app import JsonFlag, app, backend, fail
from service.entrypoints.cli.output import moment_text, print_json, show, table

notify_app = typer.Typer(help="Notifications: send a test message, list deliveries and "
                              "channels.", no_args_is_help=True)
app.add_typer(notify_app, name="notify")

STATUSES = ("queued", "retrying", "delivered", "failed", "dropped")


@notify_app.command("test")
def notify_test(
    channel: Annotated[str, typer.Argument(help="The channel's name, as in "
                                           "HOLDFAST_NOTIFY_<NAME>.")],
    as_json: JsonFlag = False,
) -> None:
    """Send a test message to CHANNEL now and report whether it arrived."""
    with backend() as holdfast:
        delivery = holdfast.test_channel(channel)
    show(as_json, delivery, f"test message delivered to {delivery['channel']} "
                            f"({delivery['id']})")


@notify_app.command("ls")
def notify_ls(
    limit: Annotated[int, typer.Option("--limit", min=1, max=1000,
                                       help="At most this many (1 to 1000).")] = 50,
    channel: Annotated[str | None, typer.Option(
        "--channel", help="Only to this channel (or ping:<instance>).")] = None,
    event: Annotated[str | None, typer.Option("--event", help="Only this event.")] = None,
    instance: Annotated[str | None, typer.Option("--instance",
                                                 help="Only about this instance.")] = None,
    status: Annotated[str | None, typer.Option(
        "--status", help="Only in this status: " + ", ".join(STATUSES) + ".")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Recent deliveries, newest first: channel, event, instance, outcome."""
    if status is not None and status not in STATUSES:
        fail(f"--status {status[:20]!r} is not a delivery status; use one of "
             f"{', '.join(STATUSES)}", 2)
    with backend() as holdfast:
        found = holdfast.list_notifications(limit, channel, event, instance, status)
    if as_json:
        print_json(found)
        return
    if not found:
        typer.echo("no notifications sent yet")
        return
    table([[moment_text(d["created_at"]), d["channel"], d["event"], d["instance"] or "-",
            d["status"], str(d["attempts"]), d["error"] or d["reason"]] for d in found],
          ["WHEN", "CHANNEL", "EVENT", "INSTANCE", "STATUS", "TRIES", "REASON / ERROR"],
          keep=("CHANNEL", "EVENT", "STATUS"))


@notify_app.command("channels")
def notify_channels(as_json: JsonFlag = False) -> None:
    """The configured channels: kind, scheme and host, events (never a token)."""
    with backend() as holdfast:
        found = holdfast.list_channels()
    if as_json:
        print_json(found)
        return
    if not found:
        typer.echo("no notification channels: define one with HOLDFAST_NOTIFY_<NAME>=<url>")
        return
    table([[c["name"], c["kind"], c["destination"], "yes" if c["signed"] else "no",
            ",".join(c["events"])] for c in found],
          ["NAME", "KIND", "DESTINATION", "SIGNED", "EVENTS"], keep=("NAME",))
