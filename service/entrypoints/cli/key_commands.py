"""``holdfast keys``: age identities for encrypted snapshots, on this machine only.

``generate`` writes a new identity file (mode 0600) and prints the recipient
to put in ``HOLDFAST_AGE_RECIPIENTS``; ``fingerprint`` prints the fingerprints
of recipients or of an identity file, to match against what a manifest or a
refused restore lists. Each command is one call of :mod:`service.usecases.keys`;
there is no daemon call, so a secret key never crosses the network.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from backup import errors
from service.entrypoints.cli.app import JsonFlag, app, fail_with, local_only
from service.entrypoints.cli.output import print_json, table

keys_app = typer.Typer(help="Age keys for encrypted snapshots: generate, fingerprint.",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")


@keys_app.command("generate")
def keys_generate(
    output: Annotated[Path, typer.Option(
        "--output", "-o", metavar="FILE", help="Where to write the new identity (a new file; "
        "it is never overwritten). Back it up: without it, its snapshots are lost.")],
    as_json: JsonFlag = False,
) -> None:
    """Write a new age identity to FILE (mode 0600) and print its recipient."""
    local_only("holdfast keys generate", "run it where the identity is to be kept")
    from service.usecases.keys import generate_identity_file

    try:
        made = generate_identity_file(output)
    except errors.HoldfastError as exc:
        fail_with(exc)
    if as_json:
        print_json(made.to_json())
        return
    typer.echo(made.recipient)
    typer.echo(f"identity written to {made.identity_file} ({made.fingerprint}); back it up "
               "now: a lost identity means its snapshots cannot be read. Set "
               "HOLDFAST_AGE_RECIPIENTS to the recipient above.", err=True)


@keys_app.command("fingerprint")
def keys_fingerprint(
    value: Annotated[str, typer.Argument(
        metavar="KEYS", help="A recipient (age1... or an SSH public key), a comma list of "
        "them, a recipients file, or an identity file.")],
    as_json: JsonFlag = False,
) -> None:
    """Print the fingerprints Holdfast records for these keys (never a key)."""
    from service.usecases.keys import describe_keys

    try:
        found = describe_keys(value)
    except errors.HoldfastError as exc:
        fail_with(exc)
    if as_json:
        print_json([key.to_json() for key in found])
        return
    table([[key.fingerprint, key.kind] for key in found], ["FINGERPRINT", "KIND"])
