"""The CLI's shared parts: the typer apps, ``--json``, and one way to open the services and fail.

Each command builds the settings and services once, calls one use case and
prints the result: a readable table, or JSON only with ``--json``. Failures
print one line on stderr (``holdfast: <what went wrong and what to do>``) and
exit non-zero with the code :mod:`~service.entrypoints.error_table` gives its
error: 2 bad input or configuration, 3 not found, 4 conflict (a name taken, a
run in progress, a container not running), 5 Docker, the catalog or a storage
target unreachable, 1 any other failure.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn

import typer

from backup import errors

if TYPE_CHECKING:
    from service.adapters.api_client.client import RemoteBackend
    from service.bootstrap import Services
    from service.entrypoints.cli.backend import HoldfastBackend
    from service.entrypoints.cli.remote import RemoteTarget
    from service.settings import Settings

# Only typer and the CLI's own modules load at start-up, so ``--help``,
# ``--version`` and completion answer at once; the settings, the services and
# through them pydantic-settings, SQLAlchemy, docker-py and boto3 are imported
# by the commands that use them (tests/unit/test_cli_imports.py keeps it so;
# bench/cli_startup.py measures it).

app = typer.Typer(
    name="holdfast",
    help="Snapshots and restores for databases running in Docker containers.",
    no_args_is_help=True,
    # --install-completion / --show-completion; the shell is detected only when asked.
    add_completion=True,
    # Plain click help and errors: typer's rich formatting imports rich on every
    # --help and usage error, most of the start-up budget (see bench/cli_startup.py).
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
)
catalog_app = typer.Typer(help="Catalog maintenance.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
targets_app = typer.Typer(help="Storage targets.", no_args_is_help=True)
app.add_typer(targets_app, name="targets")
volumes_app = typer.Typer(help="Named volumes: list, create, remove, clone.",
                          no_args_is_help=True)
app.add_typer(volumes_app, name="volumes")

JsonFlag = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only.")]


def _print_version(value: bool) -> None:
    if value:
        from service.version import holdfast_version

        typer.echo(f"holdfast {holdfast_version()}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[bool, typer.Option(
        "--version", callback=_print_version, is_eager=True,
        help="Print the version (holdfast X.Y.Z) and exit.")] = False,
    server: Annotated[str | None, typer.Option(
        "--server", envvar="HOLDFAST_SERVER", metavar="URL", show_envvar=False,
        help="Run the command against the daemon at URL (http:// or https://) through its "
             "API, instead of on this machine; or HOLDFAST_SERVER. Same output and exit "
             "codes; Ctrl-C during a backup or restore cancels the daemon's job.")] = None,
    token: Annotated[str | None, typer.Option(
        "--token", metavar="TOKEN", help="API token for --server (wins over "
        "HOLDFAST_TOKEN). It shows in 'ps' on a shared machine: prefer --token-file "
        "or HOLDFAST_TOKEN there.")] = None,
    token_file: Annotated[Path | None, typer.Option(
        "--token-file", metavar="FILE", help="Read the API token for --server from the "
        "first line of FILE.")] = None,
    ca_bundle: Annotated[Path | None, typer.Option(
        "--ca-bundle", envvar="HOLDFAST_CA_BUNDLE", metavar="FILE", show_envvar=False,
        help="PEM file of the CA certificates to verify an https --server with "
             "(or HOLDFAST_CA_BUNDLE); verification is always on.")] = None,
) -> None:
    """Snapshots and restores for databases running in Docker containers."""
    _invocation.remote = None  # set anew by every invocation (the tests run many)
    _invocation.identity_file = None
    if server:
        from service.entrypoints.cli.remote import remote_target

        try:
            _invocation.remote = remote_target(server, token, token_file,
                                               os.environ.get("HOLDFAST_TOKEN"), ca_bundle)
        except errors.HoldfastError as exc:
            fail_with(exc)


class _Invocation:
    """What the root options decided for the command running now."""

    remote: RemoteTarget | None = None
    identity_file: Path | None = None


_invocation = _Invocation()

IdentityOption = Annotated[Path | None, typer.Option(
    "--identity", metavar="FILE", exists=True, dir_okay=False, readable=True,
    help="Age identity file to read encrypted snapshots with (wins over "
         "HOLDFAST_IDENTITY_FILE); only on this machine, never sent to a daemon.")]


def use_identity(path: Path | None) -> None:
    """Read encrypted snapshots with the identity file ``path`` (``--identity``)
    in this command. With ``--server`` it is refused: identities never leave
    this machine, and the daemon reads them from its own HOLDFAST_IDENTITY_FILE."""
    if path is None:
        return
    local_only("--identity", "the daemon reads encrypted snapshots with its own "
               "HOLDFAST_IDENTITY_FILE; drop --identity, or run without --server")
    _invocation.identity_file = path


def remote() -> RemoteTarget | None:
    """The daemon this invocation runs against (``--server``), or None: local."""
    return _invocation.remote


def local_only(what: str, instead: str) -> None:
    """Refuse a command that only makes sense on this machine when ``--server``
    is given: one line, exit 2."""
    target = remote()
    if target is not None:
        fail(f"{what} runs only on this machine, not against --server {target.server} "
             f"(HOLDFAST_SERVER); {instead}", 2)


def make_remote(target: RemoteTarget) -> RemoteBackend:
    """:func:`service.entrypoints.cli.remote.remote_backend`; the entry-point
    tests swap this name for a backend on an in-process app."""
    from service.entrypoints.cli.remote import remote_backend

    return remote_backend(target)


@contextlib.contextmanager
def backend() -> Iterator[HoldfastBackend]:
    """The backend one command calls (:mod:`.backend`): the daemon's API with
    ``--server``, else the use cases on services opened here; its errors
    turned into one line and the error table's exit code."""
    target = remote()
    if target is None:
        from service.entrypoints.cli.local import LocalBackend

        with open_services() as services:
            yield LocalBackend(services)
        return
    client = make_remote(target)
    try:
        yield client
    except errors.HoldfastError as exc:
        fail_with(exc)
    except (TypeError, ValueError, KeyError):  # an answer not of the route's shape
        fail(f"{target.server} answered something that is not Holdfast's API: is --server "
             "the daemon's address, and of the same version?", 1)
    except KeyboardInterrupt as exc:
        fail(str(exc) or "interrupted", 130)
    finally:
        client.close()


def fail(message: str, code: int) -> NoReturn:
    typer.echo(f"holdfast: {message}", err=True)
    raise typer.Exit(code)


def fail_with(exc: errors.HoldfastError) -> NoReturn:
    """Fail with the error's message and the exit code the error table gives it."""
    from service.entrypoints.error_table import exit_code_for

    fail(str(exc), exit_code_for(exc))


def load_settings() -> Settings:
    """The settings from the environment; a bad value fails with one line naming
    the variable, exit 2."""
    from pydantic import ValidationError

    from service.settings import Settings

    try:
        settings = Settings.load()
    except ValidationError as exc:
        first = exc.errors()[0]
        field = "HOLDFAST_" + str(first["loc"][0]).upper() if first["loc"] else "settings"
        fail(f"{field}: {first['msg']}", 2)
    except errors.HoldfastError as exc:
        fail_with(exc)
    if _invocation.identity_file is not None:
        settings.identity_file = _invocation.identity_file
    return settings


def bootstrap(settings: Settings) -> Services:
    """:func:`service.bootstrap.bootstrap`, imported when a command first needs
    it; the entry-point tests swap this name for the fakes."""
    from service.bootstrap import bootstrap as build

    return build(settings, quick_reads=True)


@contextlib.contextmanager
def open_services() -> Iterator[Services]:
    """Settings and services for one command, with errors turned into one line."""
    from service.observability.logs import configure_logging

    settings = load_settings()
    configure_logging(settings.log_level if settings.log_level != "INFO" else "WARNING",
                      settings.log_format)
    # A helper-image pull can take minutes: its progress lines are worth showing
    # even though a one-shot command otherwise logs only warnings.
    logging.getLogger("service.adapters.docker.images").setLevel(logging.INFO)
    services = None
    try:
        services = bootstrap(settings)
        yield services
    except errors.HoldfastError as exc:
        fail_with(exc)
    except KeyboardInterrupt:
        fail("interrupted", 130)
    finally:
        if services is not None:
            services.close()
