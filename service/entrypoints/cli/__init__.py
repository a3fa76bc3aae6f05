"""The ``holdfast`` command line (typer): one module of commands per area.

Importing this package registers every command on :data:`app`.
"""

import sys

from service.entrypoints.cli import (
    commands,
    copy_commands,
    host_commands,
    key_commands,
    notify_commands,
    token_commands,
    verify_commands,
    volume_commands,
    warm_commands,
)
from service.entrypoints.cli.app import app

_COMPLETION = ("--install-completion", "--show-completion")


def main() -> None:
    args = sys.argv[1:]
    # Completion is answered while the options are parsed, before --server is
    # known to the commands: refuse the pair here, in one line like any other.
    if any(arg.split("=")[0] in _COMPLETION for arg in args) and \
            any(arg.split("=")[0] == "--server" for arg in args):
        sys.stderr.write("holdfast: shell completion is set up on this machine, not against "
                         "--server; run it without --server\n")
        raise SystemExit(2)
    app()


__all__ = ["app", "commands", "copy_commands", "host_commands", "key_commands", "main",
           "notify_commands", "token_commands", "verify_commands", "volume_commands",
           "warm_commands"]
