"""The ``holdfast`` command line (typer): one module of commands per area.

Importing this package registers every command on :data:`app`.
"""

from service.entrypoints.cli import commands, copy_commands, token_commands, volume_commands
from service.entrypoints.cli.app import app


def main() -> None:
    app()


__all__ = ["app", "commands", "copy_commands", "main", "token_commands", "volume_commands"]
