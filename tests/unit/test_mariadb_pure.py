"""The MariaDB/MySQL engine's pure parts: which account and variables it uses,
which tools it runs with which arguments, and how an accounts dump is
filtered, checked without Docker (a scripted fake runs the "container")."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import pytest

from backup.engines import get_engine
from backup.engines.mariadb import (
    ACCOUNTS_MEMBER,
    MARIADB_ENV,
    META_MEMBER,
    MYSQL_ENV,
    SQL_MEMBER,
    Credentials,
    DumpTool,
    MariaDBEngine,
    MySQLEngine,
    dump_arguments,
    launch_argv,
    parse_hex_lines,
    redact_passwords,
    resolve_credentials,
    skip_existing_accounts,
)
from backup.errors import (
    CorruptSnapshot,
    DumpFailed,
    ExecFailed,
    MissingCredentials,
    NotFound,
)
from backup.framing import pack, unpack
from backup.ports import ExecResult
from backup.types import DatabaseContainer

MARIADB_ORDER = (MARIADB_ENV, MYSQL_ENV)
MYSQL_ORDER = (MYSQL_ENV, MARIADB_ENV)


def container(env: Mapping[str, str]) -> DatabaseContainer:
    return DatabaseContainer(id="c1", name="shop-db", image="mariadb:10.11", image_id="",
                             env=dict(env))


# --- credentials --------------------------------------------------------------


@pytest.mark.parametrize(("env", "order", "expected"), [
    ({"MARIADB_ROOT_PASSWORD": "r"}, MARIADB_ORDER,
     ("root", "MARIADB_ROOT_PASSWORD", "r", None)),
    ({"MYSQL_ROOT_PASSWORD": "r"}, MARIADB_ORDER, ("root", "MYSQL_ROOT_PASSWORD", "r", None)),
    # Both set: the engine's own family wins, as in its image.
    ({"MARIADB_ROOT_PASSWORD": "m", "MYSQL_ROOT_PASSWORD": "y"}, MARIADB_ORDER,
     ("root", "MARIADB_ROOT_PASSWORD", "m", None)),
    ({"MARIADB_ROOT_PASSWORD": "m", "MYSQL_ROOT_PASSWORD": "y"}, MYSQL_ORDER,
     ("root", "MYSQL_ROOT_PASSWORD", "y", None)),
    # Root beats the application user, who sees only its own databases.
    ({"MARIADB_ROOT_PASSWORD": "r", "MARIADB_USER": "app", "MARIADB_PASSWORD": "a"},
     MARIADB_ORDER, ("root", "MARIADB_ROOT_PASSWORD", "r", None)),
    ({"MARIADB_ROOT_PASSWORD_FILE": "/run/secrets/root"}, MARIADB_ORDER,
     ("root", "MARIADB_ROOT_PASSWORD_FILE", None, "/run/secrets/root")),
    ({"MARIADB_ALLOW_EMPTY_ROOT_PASSWORD": "1"}, MARIADB_ORDER,
     ("root", "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD", None, None)),
    ({"MYSQL_ALLOW_EMPTY_PASSWORD": "yes"}, MYSQL_ORDER,
     ("root", "MYSQL_ALLOW_EMPTY_PASSWORD", None, None)),
    # An empty value is unset, as the images' [ -z ] tests treat it.
    ({"MARIADB_ROOT_PASSWORD": "", "MARIADB_RANDOM_ROOT_PASSWORD": "1",
      "MARIADB_USER": "app", "MARIADB_PASSWORD": "a"}, MARIADB_ORDER,
     ("app", "MARIADB_USER/MARIADB_PASSWORD", "a", None)),
    ({"MYSQL_RANDOM_ROOT_PASSWORD": "1", "MYSQL_USER": "app", "MYSQL_PASSWORD": "a"},
     MYSQL_ORDER, ("app", "MYSQL_USER/MYSQL_PASSWORD", "a", None)),
    # The images pair MARIADB_USER with MYSQL_PASSWORD just as well.
    ({"MARIADB_USER": "app", "MYSQL_PASSWORD_FILE": "/s/pw"}, MARIADB_ORDER,
     ("app", "MARIADB_USER/MYSQL_PASSWORD_FILE", None, "/s/pw")),
])
def test_the_account_and_variable_chosen(
    env: dict[str, str], order: Any, expected: tuple[str, str, str | None, str | None],
) -> None:
    found = resolve_credentials(env, order)
    assert found is not None
    assert (found.user, found.source, found.password, found.password_file) == expected


@pytest.mark.parametrize("env", [
    {},
    {"MARIADB_RANDOM_ROOT_PASSWORD": "1"},
    {"MARIADB_USER": "app"},
    {"MARIADB_PASSWORD": "a"},
    {"MARIADB_ROOT_PASSWORD": ""},
])
def test_no_usable_credentials(env: dict[str, str]) -> None:
    assert resolve_credentials(env, MARIADB_ORDER) is None
    with pytest.raises(MissingCredentials) as raised:
        MariaDBEngine().check(container(env))
    message = str(raised.value)
    assert "\n" not in message
    assert "shop-db" in message and "MARIADB_USER" in message


def test_missing_credentials_messages_name_each_engines_variables() -> None:
    with pytest.raises(MissingCredentials, match=r"set MYSQL_ROOT_PASSWORD \(or MYSQL_USER"):
        MySQLEngine().check(container({}))
    with pytest.raises(MissingCredentials, match=r"random \(MARIADB_RANDOM_ROOT_PASSWORD\).*"
                                                 r"MARIADB_USER and MARIADB_PASSWORD"):
        MariaDBEngine().check(container({"MARIADB_RANDOM_ROOT_PASSWORD": "yes"}))


def test_the_password_travels_only_in_the_exec_environment() -> None:
    with_password = Credentials("root", "MARIADB_ROOT_PASSWORD", password="s3cret")
    assert with_password.exec_env() == {"MYSQL_PWD": "s3cret"}
    assert "s3cret" not in repr(with_password)
    from_file = Credentials("root", "X_FILE", password_file="/run/secrets/pw")
    assert from_file.exec_env() == {"HOLDFAST_PASSWORD_FILE": "/run/secrets/pw"}
    assert Credentials("root", "MARIADB_ALLOW_EMPTY_ROOT_PASSWORD").exec_env() == {}


# --- tools and arguments -------------------------------------------------------


def test_engines_are_registered_with_their_tool_preferences() -> None:
    mariadb, mysql = get_engine("mariadb"), get_engine("mysql")
    assert isinstance(mariadb, MariaDBEngine) and not isinstance(mariadb, MySQLEngine)
    assert isinstance(mysql, MySQLEngine)
    assert mariadb.dump_tools == ("mariadb-dump", "mysqldump")
    assert mariadb.clients == ("mariadb", "mysql")
    assert mysql.dump_tools == ("mysqldump", "mariadb-dump")
    assert mysql.clients == ("mysql", "mariadb")
    assert mariadb.data_paths(container({})) == ["/var/lib/mysql"]
    assert mariadb.loads_before_start is mysql.loads_before_start is False


def test_one_dump_run_covers_every_database_in_one_transaction() -> None:
    args = dump_arguments(DumpTool("mariadb-dump", "mariadb-dump from 11.4.2-MariaDB"),
                          "root", ["shop", "-odd name"])
    for flag in ("--single-transaction", "--skip-lock-tables", "--routines", "--triggers",
                 "--events", "--hex-blob", "--default-character-set=utf8mb4",
                 "--user=root", "--protocol=socket"):
        assert flag in args
    assert "--set-gtid-purged=OFF" not in args
    assert args[-4:] == ["--databases", "--", "shop", "-odd name"]
    oracle = dump_arguments(DumpTool("mysqldump", "mysqldump  Ver 8.0.36 for Linux on x86_64"),
                            "app", ["shop"])
    assert "--set-gtid-purged=OFF" in oracle and "--user=app" in oracle


def test_launcher_execs_the_first_installed_tool() -> None:
    argv = launch_argv(("mysql", "mariadb"), ["--user=root", "-e", "SELECT 1"])
    assert argv[:2] == ["sh", "-c"]
    assert "for tool in mysql mariadb;" in argv[2]
    assert argv[3:] == ["mysql", "--user=root", "-e", "SELECT 1"]


# --- the dump and restore flow against a scripted container ---------------------


class ScriptedExec:
    """A fake container: answers the engine's commands from a script and
    records every argv and environment."""

    def __init__(self, tool_output: str, dump_body: bytes = b"",
                 fail_stream: bool | Exception = False,
                 databases: Sequence[str] = ("shop",)) -> None:
        self.tool_output = tool_output
        self.dump_body = dump_body
        self.fail_stream = fail_stream
        self.databases = databases
        self.calls: list[tuple[list[str], dict[str, str]]] = []
        self.stdin: list[bytes] = []

    def stream(self, container_id: str, argv: Sequence[str], *,
               env: Mapping[str, str] | None = None, user: str | None = None,
               stdin: Iterable[bytes] | None = None) -> Iterator[bytes]:
        self.calls.append((list(argv), dict(env or {})))
        yield from ([self.dump_body[:10], self.dump_body[10:]] if self.dump_body else [])
        if isinstance(self.fail_stream, Exception):
            raise self.fail_stream
        if self.fail_stream:
            raise ExecFailed(argv[0], 2, "mysqldump: Got error: 1045: Access denied for user "
                                         "'root'@'localhost' (using password: YES)")

    def run(self, container_id: str, argv: Sequence[str], *,
            env: Mapping[str, str] | None = None, user: str | None = None,
            stdin: Iterable[bytes] | None = None, check: bool = True,
            output_limit: int = 1024 * 1024) -> ExecResult:
        self.calls.append((list(argv), dict(env or {})))
        if stdin is not None:
            self.stdin.append(b"".join(stdin))
        joined = " ".join(argv)
        if "--version" in argv[2]:
            return ExecResult(0, self.tool_output.encode(), "")
        if "information_schema.SCHEMATA" in joined:
            return ExecResult(0, "".join(name.encode().hex().upper() + "\n"
                                         for name in self.databases).encode(), "")
        return ExecResult(0, b"", "")


ORACLE_TOOL = "mysqldump\nmysqldump  Ver 8.0.36 for Linux on x86_64 (MySQL Community Server)\n"
MARIADB_TOOL = "mysqldump\nmysqldump from 10.11.6-MariaDB, client 10.19 for debian-linux-gnu\n"
BODY = b"-- MySQL dump\nCREATE DATABASE shop;\n-- Dump completed\n"


def test_mysql_engine_with_oracle_tools_dumps_databases_without_accounts() -> None:
    runner = ScriptedExec(ORACLE_TOOL, BODY)
    env = {"MYSQL_ROOT_PASSWORD": "pw-1", "MYSQL_DATABASE": "shop"}
    dump = MySQLEngine().dump(container(env), runner)
    members = [(m.name, b"".join(m)) for m in unpack(list(dump.chunks))]
    assert [name for name, _ in members] == [META_MEMBER, SQL_MEMBER]
    meta = json.loads(members[0][1])
    assert meta["databases"] == ["shop"] and meta["accounts"] is False
    assert meta["tool"] == "mysqldump" and meta["user"] == "root"
    assert members[1][1] == BODY
    # The tool lookup tried mysqldump first, and the dump ran it.
    lookup = next(argv for argv, _ in runner.calls if "--version" in argv[2])
    assert lookup[-2:] == ["mysqldump", "mariadb-dump"]
    dump_argv, dump_env = next((a, e) for a, e in runner.calls if "--databases" in a)
    assert dump_argv[3] == "mysqldump" and "--set-gtid-purged=OFF" in dump_argv
    assert dump_env == {"MYSQL_PWD": "pw-1"}
    for argv, _ in runner.calls:
        assert not any("pw-1" in arg for arg in argv)


def test_mariadb_tools_as_root_also_dump_the_accounts() -> None:
    runner = ScriptedExec(MARIADB_TOOL, BODY)
    dump = MySQLEngine().dump(container({"MARIADB_ROOT_PASSWORD": "pw"}), runner)
    names = [m.name for m in unpack(list(dump.chunks))]
    assert names == [META_MEMBER, SQL_MEMBER, ACCOUNTS_MEMBER]
    as_user = ScriptedExec(MARIADB_TOOL, BODY)
    dump = MariaDBEngine().dump(container({"MARIADB_USER": "app", "MARIADB_PASSWORD": "a",
                                           "MARIADB_RANDOM_ROOT_PASSWORD": "1"}), as_user)
    assert [m.name for m in unpack(list(dump.chunks))] == [META_MEMBER, SQL_MEMBER]


@pytest.mark.parametrize(("body", "fail", "message"), [
    (b"", False, "produced no data"),
    # Docker forgets the exec of a container that stopped while it ran.
    (b"-- MariaDB dump\n", NotFound("No such exec instance: 897f8db4"),
     "lost its container: No such exec instance"),
    (b"-- MariaDB dump\nINSERT INTO t VALUES (1", False, "without its '-- Dump completed'"),
    (b"-- MariaDB dump\n", True, "exited 2: .*Access denied.*MARIADB_ROOT_PASSWORD"),
])
def test_a_dump_that_is_empty_cut_or_refused_fails(body: bytes, fail: bool | Exception,
                                                   message: str) -> None:
    runner = ScriptedExec(MARIADB_TOOL, body, fail_stream=fail)
    dump = MariaDBEngine().dump(container({"MARIADB_ROOT_PASSWORD": "pw"}), runner)
    with pytest.raises(DumpFailed, match=message) as raised:
        list(dump.chunks)
    assert "\n" not in str(raised.value)


def test_selected_databases_must_exist() -> None:
    runner = ScriptedExec(MARIADB_TOOL, BODY, databases=["crm", "shop"])
    with pytest.raises(DumpFailed, match=r"database\(s\) nope not found in shop-db.*crm, shop"):
        MariaDBEngine().dump(container({"MARIADB_ROOT_PASSWORD": "pw"}), runner, ["shop", "nope"])
    empty = ScriptedExec(MARIADB_TOOL, BODY, databases=[])
    with pytest.raises(DumpFailed, match="no user databases"):
        MariaDBEngine().dump(container({"MARIADB_ROOT_PASSWORD": "pw"}), empty)


def test_restore_refuses_an_archive_without_metadata_or_dump() -> None:
    engine = MariaDBEngine()
    target = container({"MARIADB_ROOT_PASSWORD": "pw"})
    runner = ScriptedExec(MARIADB_TOOL)
    with pytest.raises(CorruptSnapshot, match="metadata"):
        engine.restore(target, runner, pack([(SQL_MEMBER, [BODY])]))
    with pytest.raises(CorruptSnapshot, match=r"no dump\.sql"):
        engine.restore(target, runner, pack([(META_MEMBER, [b'{"databases": ["shop"]}'])]))
    assert runner.stdin == []


def test_restore_of_a_truncated_archive_feeds_what_it_has_then_drops_what_it_created() -> None:
    engine = MariaDBEngine()
    runner = ScriptedExec(MARIADB_TOOL, databases=[])
    archive = b"".join(pack([(META_MEMBER, [b'{"databases": ["new db"]}']),
                             (SQL_MEMBER, [BODY * 50])]))
    with pytest.raises(CorruptSnapshot, match="ends early"):
        engine.restore(container({"MARIADB_ROOT_PASSWORD": "pw"}), runner,
                       [archive[: len(archive) - 40]])
    loaded, dropped = runner.stdin
    assert 0 < len(loaded) < len(BODY * 50)
    assert dropped == b"DROP DATABASE IF EXISTS `new db`;\n"


# --- accounts -------------------------------------------------------------------

ACCOUNTS_DUMP = b"""/*M!999999\\- enable the sandbox mode */
CREATE USER IF NOT EXISTS `mariadb.sys`@`localhost` ACCOUNT LOCK PASSWORD EXPIRE;
CREATE USER IF NOT EXISTS `root`@`%` IDENTIFIED BY PASSWORD '*79D0CF9A6A05';
CREATE USER IF NOT EXISTS `app`@`%` IDENTIFIED BY PASSWORD '*DB14CBAE92D7';
CREATE USER IF NOT EXISTS `re``ader`@`10.0.%` IDENTIFIED BY PASSWORD '*4A90EA850A77';
SELECT COALESCE(CURRENT_ROLE(),'NONE') into @current_role;
/*M!100005 CREATE ROLE IF NOT EXISTS 'analyst' WITH ADMIN mariadb_dump_import_role */;
/*M!100005 GRANT 'analyst' TO 'root'@'LOCALHOST' WITH ADMIN OPTION */;
GRANT ALL PRIVILEGES ON *.* TO `root`@`%` IDENTIFIED BY PASSWORD '*79D0CF9A6A05' WITH GRANT OPTION;
GRANT PROXY ON ``@`%` TO `root`@`%` WITH GRANT OPTION;
GRANT PROXY ON ``@`%` TO `re``ader`@`10.0.%`;
GRANT ALL PRIVILEGES ON `shop`.* TO `app`@`%`;
GRANT `analyst` TO `re``ader`@`10.0.%`;
GRANT SELECT ON `shop`.`t` TO `re``ader`@`10.0.%`;
/*M!100005 SET DEFAULT ROLE `analyst` FOR 're`ader'@'10.0.%' */;
/*M!100005 SET DEFAULT ROLE NONE FOR 'app'@'%' */;
GRANT SELECT ON `reports`.* TO `analyst`;
"""


def test_statements_about_accounts_the_target_has_are_skipped() -> None:
    existing = {("root", "%"), ("root", "localhost"), ("app", "%"), ("mariadb.sys", "localhost")}
    script, dropped = skip_existing_accounts(ACCOUNTS_DUMP, existing)
    kept = script.decode().splitlines()
    assert dropped == 8
    assert not any("`root`" in line or "'root'" in line or "`app`" in line
                   or "'app'" in line or "mariadb.sys" in line for line in kept)
    assert sum("re``ader" in line or "re`ader" in line for line in kept) == 5
    assert "GRANT SELECT ON `reports`.* TO `analyst`;" in kept
    assert ("/*M!100005 CREATE ROLE IF NOT EXISTS 'analyst' WITH ADMIN "
            "mariadb_dump_import_role */;") in kept
    # Nothing exists yet: everything stays.
    assert skip_existing_accounts(ACCOUNTS_DUMP, set()) == (ACCOUNTS_DUMP, 0)


def test_helpers_for_names_and_logs() -> None:
    assert parse_hex_lines(b"73686F70\n7265706F7274732D32303234\n") == ["shop", "reports-2024"]
    assert parse_hex_lines(b"a\tb\nc".hex().encode()) == ["a\tb\nc"]
    line = ("ERROR 1064 (42000) at line 3: syntax near 'IDENTIFIED BY PASSWORD "
            "'*79D0CF9A6A05' WITH'")
    assert "79D0CF" not in redact_passwords(line)
