"""``holdfast copies``: the containers restores created, listed, and their TTL extended.

The daemon (``holdfast serve``) removes a copy when its TTL passes; these
commands read and change the catalog it works from (with ``--server``, through
the daemon's ``/v1/copies``), through the backend as in :mod:`.commands`.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from backup import errors
from service.entrypoints.cli.app import JsonFlag, app, backend
from service.entrypoints.cli.output import moment_text, print_json, show, table

copies_app = typer.Typer(help="Copies: the containers restores created, with their TTL.",
                         no_args_is_help=True)
app.add_typer(copies_app, name="copies")


def parse_labels(pairs: list[str] | None) -> dict[str, str]:
    """``--label KEY=VALUE`` options as a dict; a pair without ``=`` is refused."""
    labels: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise errors.InvalidInput(f"--label {pair[:60]!r}: write it as KEY=VALUE")
        labels[key] = value
    return labels


def left_text(seconds: int | None) -> str:
    """``3h 20m`` for 12000 seconds; ``-`` without a TTL."""
    if seconds is None:
        return "-"
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else "",
             f"{minutes}m" if minutes and not days else "",
             f"{secs}s" if not (days or hours or minutes) else ""]
    return " ".join(part for part in parts if part)


def method_text(result: dict[str, Any]) -> str:
    """`` by reflinks from warm copy W`` when a warm copy was cloned; its note."""
    how = {"reflink": "by reflinks", "copy": "by copying"}.get(result.get("method") or "")
    said = f", {how} from warm copy {result.get('warm')}" if how else ""
    return said + (f" ({result['note']})" if result.get("note") else "")


def restore_details(result: dict[str, Any]) -> str:
    """The lines a person reads after a restore: where to connect, and when it goes."""
    lines = []
    urls = result.get("urls") or {}
    if urls.get("published"):
        lines.append(f"connect: {urls['published']}")
    for network, url in sorted((urls.get("networks") or {}).items()):
        address = (result.get("networks") or {}).get(network, {}).get("ip_address") or "?"
        lines.append(f"on network {network} ({address}): {url}")
    if result.get("expires_at"):
        lines.append(f"expires at {result['expires_at']} (holdfast copies extend "
                     f"{result['container']} 2h gives it more time)")
    return "".join(f"\n  {line}" for line in lines)


@copies_app.command("ls")
def copies_ls(as_json: JsonFlag = False) -> None:
    """Live copies, newest first: container, snapshot, expiry and time left."""
    with backend() as holdfast:
        found = holdfast.list_copies()
    if as_json:
        print_json(found)
        return
    if not found:
        typer.echo("no copies: 'holdfast restore ID --name NEW --ttl 4h' makes one")
        return
    table([[c["name"], c["container_id"][:12], c["snapshot_id"], c["instance"],
            moment_text(c["expires_at"], "never"), left_text(c["seconds_left"]),
            c["removal_error"] or ""] for c in found],
          ["NAME", "CONTAINER", "SNAPSHOT", "INSTANCE", "EXPIRES", "LEFT", "LAST ERROR"],
          keep=("NAME",))


@copies_app.command("extend")
def copies_extend(
    name: Annotated[str, typer.Argument(help="The copy's container name.")],
    ttl: Annotated[str, typer.Argument(help="New TTL counted from now: 1m to 365d, e.g. 2h.")],
    as_json: JsonFlag = False,
) -> None:
    """Set a copy to expire TTL from now (also one that had no TTL)."""
    with backend() as holdfast:
        copy = holdfast.extend_copy(name, ttl)
    show(as_json, copy,
         f"copy {copy['name']} now expires at "
         f"{moment_text(copy['expires_at'])} (in {left_text(copy['seconds_left'])})")
