"""``holdfast tokens``: API tokens made, listed and revoked, against the catalog
(or, with ``--server``, through the daemon's ``/v1/tokens``: an admin token).

This is how the first admin token is made: on the daemon's host (or anywhere
with its ``HOLDFAST_DATABASE_URL``), ``holdfast tokens create --name NAME
--scope admin`` prints the secret once; the catalog keeps only its sha256.
As in :mod:`.commands`, each command is one call of the backend.
"""

from __future__ import annotations

from typing import Annotated

import typer

from service.entrypoints.cli.app import JsonFlag, app, backend
from service.entrypoints.cli.output import moment_text, print_json, table

tokens_app = typer.Typer(help="API tokens: create (the secret is shown once), list, revoke.",
                         no_args_is_help=True)
app.add_typer(tokens_app, name="tokens")


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
    with backend() as holdfast:
        made = holdfast.create_token(name, scope, expires)
    if as_json:
        print_json(made)
        return
    expiry = f"expires {moment_text(made['expires_at'])}" if made["expires_at"] \
        else "never expires"
    typer.echo(f"token {made['name']} ({', '.join(made['scopes'])}; {expiry}):\n"
               f"{made['token']}\n"
               "Store it now: it is not shown again. Send it as 'Authorization: Bearer <token>'.")


@tokens_app.command("ls")
def tokens_ls(as_json: JsonFlag = False) -> None:
    """Tokens by name: scopes, creator, last use, expiry (never a secret)."""
    with backend() as holdfast:
        found = holdfast.list_tokens()
    if as_json:
        print_json(found)
        return
    if not found:
        typer.echo("no tokens: 'holdfast tokens create --name NAME --scope admin' makes one")
        return
    table([[t["name"], ",".join(t["scopes"]), t["created_by"] or "-",
            moment_text(t["created_at"]), moment_text(t["last_used_at"], "never"),
            moment_text(t["expires_at"], "never")] for t in found],
          ["NAME", "SCOPES", "CREATED BY", "CREATED", "LAST USED", "EXPIRES"], keep=("NAME",))


@tokens_app.command("revoke")
def tokens_revoke(
    name: Annotated[str, typer.Argument(help="The token's name (holdfast tokens ls).")],
) -> None:
    """Revoke a token: the daemon refuses its next request."""
    with backend() as holdfast:
        holdfast.revoke_token(name)
    typer.echo(f"token {name} revoked")
