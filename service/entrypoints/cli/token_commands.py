"""``holdfast tokens``: API tokens made, listed and revoked, locally against the catalog.

This is how the first admin token is made: on the daemon's host (or anywhere
with its ``HOLDFAST_DATABASE_URL``), ``holdfast tokens create --name NAME
--scope admin`` prints the secret once; the catalog keeps only its sha256.
As in :mod:`.commands`, use cases are imported by the command that calls them.
"""

from __future__ import annotations

import getpass
from datetime import UTC, datetime
from typing import Annotated

import typer

from service.entrypoints.cli.app import JsonFlag, app, open_services
from service.entrypoints.cli.output import print_json, table

tokens_app = typer.Typer(help="API tokens: create (the secret is shown once), list, revoke.",
                         no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


def _creator() -> str:
    """Who made a token from the command line: ``cli:<login name>``."""
    try:
        return f"cli:{getpass.getuser()}"
    except (OSError, KeyError):  # no login name in the environment or the user database
        return "cli"


@tokens_app.command("create")
def tokens_create(
    name: Annotated[str, typer.Option("--name", help="A unique name: 1-64 letters, digits, "
                                      "'.', '_' or '-'.")],
    scope: Annotated[list[str], typer.Option(
        "--scope", help="read, backup, restore or admin (admin implies all); repeat for "
                        "more than one.")],
    expires: Annotated[str | None, typer.Option(
        "--expires", help="Expire this long from now: 1m to 3650d, e.g. 90d, 12h, 30m.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Make a token and print its secret, the only time it is shown."""
    from service.usecases import tokens

    with open_services() as services:
        made = tokens.create_token(services, name, scope, expires, created_by=_creator(),
                                   now=datetime.now(UTC))
    if as_json:
        print_json(made.to_json())
        return
    record = made.record
    expiry = f"expires {record.expires_at:%Y-%m-%d %H:%M:%SZ}" if record.expires_at \
        else "never expires"
    typer.echo(f"token {record.name} ({', '.join(record.scopes)}; {expiry}):\n{made.secret}\n"
               "Store it now: it is not shown again. Send it as 'Authorization: Bearer <token>'.")


@tokens_app.command("ls")
def tokens_ls(as_json: JsonFlag = False) -> None:
    """Tokens by name: scopes, creator, last use, expiry (never a secret)."""
    from service.usecases import tokens

    with open_services() as services:
        found = tokens.list_tokens(services)
    if as_json:
        print_json([t.to_json() for t in found])
        return
    if not found:
        typer.echo("no tokens: 'holdfast tokens create --name NAME --scope admin' makes one")
        return

    def when(moment: datetime | None, none: str) -> str:
        return moment.strftime("%Y-%m-%d %H:%M:%SZ") if moment else none

    table([[t.name, ",".join(t.scopes), t.created_by or "-", when(t.created_at, "-"),
            when(t.last_used_at, "never"), when(t.expires_at, "never")] for t in found],
          ["NAME", "SCOPES", "CREATED BY", "CREATED", "LAST USED", "EXPIRES"], keep=("NAME",))


@tokens_app.command("revoke")
def tokens_revoke(
    name: Annotated[str, typer.Argument(help="The token's name (holdfast tokens ls).")],
) -> None:
    """Revoke a token: the daemon refuses its next request."""
    from service.usecases import tokens

    with open_services() as services:
        tokens.revoke_token(services, name)
    typer.echo(f"token {name} revoked")
