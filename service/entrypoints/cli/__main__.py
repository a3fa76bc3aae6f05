"""``python -m service.entrypoints.cli``: the same as the ``holdfast`` command."""

from service.entrypoints.cli import main

main()
