"""The MariaDB and MySQL engines run the shared engine contract on real
containers of ``holdfast-test/mariadb:10.11`` (once as ``mariadb`` with the
``MARIADB_*`` variables, once as ``mysql`` with the ``MYSQL_*`` ones and the
``mysqldump``/``mysql`` names), plus what a database engine must get right
beyond a round trip: one consistent snapshot while transactions run, a wrong
password or a container that stops mid-dump failing with nothing stored, the
password never on a command line, readiness only after the init-time server,
and an application user's own credentials."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import posixpath
import random
import re
import secrets
import tarfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import docker
import pytest
from docker.errors import APIError, NotFound
from docker.models.containers import Container

from backup.engines.mariadb import (
    ACCOUNTS_MEMBER,
    META_MEMBER,
    SQL_MEMBER,
    MariaDBEngine,
    MySQLEngine,
)
from backup.errors import DumpFailed
from backup.framing import unpack
from backup.pipeline import take_snapshot
from backup.ports import ExecResult
from backup.storage.local import LocalStorage
from backup.types import DatabaseContainer, utcnow
from service.adapters.docker import DockerAdapter
from tests.contract.engine_contract import EngineContract, RecordingExec, top_processes
from tests.harness.docker_fixtures import TEST_LABEL, require_image

pytestmark = pytest.mark.docker

MARIADB_IMAGE = "holdfast-test/mariadb:10.11"
ROOT_PASSWORD = "r00t-Test-pw-5d8e"
APP_PASSWORD = "app-Test-pw-41c7"
READER_PASSWORD = "reader-pw-0a19"
READY_TIMEOUT_S = 90.0

# The time zone tables are the image's default but cost two seconds per
# container; only the readiness test keeps them, to see a realistic init.
MARIADB_STYLE_ENV = {
    "MARIADB_ROOT_PASSWORD": ROOT_PASSWORD, "MARIADB_DATABASE": "shop",
    "MARIADB_USER": "app", "MARIADB_PASSWORD": APP_PASSWORD, "MARIADB_INITDB_SKIP_TZINFO": "1",
}
MYSQL_STYLE_ENV = {
    "MYSQL_ROOT_PASSWORD": ROOT_PASSWORD, "MYSQL_DATABASE": "shop",
    "MYSQL_USER": "app", "MYSQL_PASSWORD": APP_PASSWORD, "MYSQL_INITDB_SKIP_TZINFO": "1",
}
APP_ONLY_ENV = {
    "MARIADB_RANDOM_ROOT_PASSWORD": "1", "MARIADB_DATABASE": "shop",
    "MARIADB_USER": "app", "MARIADB_PASSWORD": APP_PASSWORD, "MARIADB_INITDB_SKIP_TZINFO": "1",
}

# Every kind of object the dump must carry: utf8mb4 text, NULLs, decimals,
# DATETIME(6), binary columns holding every byte value, a foreign key, a
# view, a procedure and a function with BEGIN...END bodies, a trigger and an
# event; run by the application user (the seed of `shop` only needs its grants).
SEED_SHOP = r"""
CREATE TABLE customers (
  id INT PRIMARY KEY AUTO_INCREMENT,
  name VARCHAR(120) NOT NULL,
  email VARCHAR(200) NULL,
  joined DATE,
  balance DECIMAL(12,2) NOT NULL DEFAULT 0
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
INSERT INTO customers (name, email, joined, balance)
  SELECT CONCAT('customer ', seq, IF(seq % 3 = 0, ' Zoë 🎉 中文 \\ ''q''', '')),
         IF(seq % 7 = 0, NULL, CONCAT('c', seq, '@example.com')),
         '2020-01-01' + INTERVAL seq DAY, (seq % 997) / 3 - 100
  FROM seq_1_to_5000;
CREATE TABLE orders (
  id BIGINT PRIMARY KEY AUTO_INCREMENT,
  customer INT NOT NULL,
  total DECIMAL(10,2),
  note TEXT,
  placed DATETIME(6),
  CONSTRAINT fk_customer FOREIGN KEY (customer) REFERENCES customers (id)
) ENGINE=InnoDB;
INSERT INTO orders (customer, total, note, placed)
  SELECT 1 + seq % 5000, IF(seq % 11 = 0, NULL, (seq % 99991) / 97),
         IF(seq % 5 = 0, NULL, MD5(seq)), '2024-02-29 12:00:00.123456' + INTERVAL seq MINUTE
  FROM seq_1_to_20000;
CREATE TABLE blobs (id INT PRIMARY KEY, payload LONGBLOB, digest BINARY(32), raw VARBINARY(16))
  ENGINE=InnoDB;
INSERT INTO blobs
  SELECT seq, IF(seq % 10 = 0, NULL, REPEAT(UNHEX(SHA2(seq, 256)), 1 + seq % 40)),
         UNHEX(SHA2(seq, 256)), UNHEX('00FF5C270A0D1A22')
  FROM seq_1_to_500;
INSERT INTO blobs (id, payload) SELECT 1000, GROUP_CONCAT(CHAR(seq) SEPARATOR '')
  FROM seq_0_to_255;
CREATE VIEW big_orders AS SELECT id, customer, total FROM orders WHERE total > 500;
DELIMITER //
CREATE PROCEDURE add_order(IN who INT, IN amount DECIMAL(10,2))
BEGIN
  INSERT INTO orders (customer, total) VALUES (who, amount);
  SELECT LAST_INSERT_ID();
END//
CREATE FUNCTION customer_total(who INT) RETURNS DECIMAL(14,2) READS SQL DATA
BEGIN
  RETURN (SELECT COALESCE(SUM(total), 0) FROM orders WHERE customer = who);
END//
DELIMITER ;
CREATE TRIGGER orders_note BEFORE INSERT ON orders FOR EACH ROW
  SET NEW.note = COALESCE(NEW.note, 'via trigger');
CREATE EVENT nightly_cleanup ON SCHEDULE EVERY 1 DAY STARTS '2030-01-01 03:00:00'
  DO DELETE FROM orders WHERE total IS NULL AND id < 0;
"""

# A second database whose name needs quoting, with a non-default character
# set, doubles and a non-transactional (Aria) table; and accounts beyond the
# image's own: a user with database, column and routine grants and a role.
SEED_ROOT = r"""
CREATE DATABASE `reports-2024` CHARACTER SET latin1 COLLATE latin1_swedish_ci;
USE `reports-2024`;
CREATE TABLE kpi (day DATE PRIMARY KEY, value INT, ratio DOUBLE, label VARCHAR(40))
  ENGINE=InnoDB;
INSERT INTO kpi SELECT '2024-01-01' + INTERVAL seq DAY, seq * 7, seq / 7 + 1e-9 * seq,
                       IF(seq % 2, 'café', NULL) FROM seq_0_to_365;
CREATE TABLE legacy (id INT PRIMARY KEY, note VARCHAR(20)) ENGINE=Aria;
INSERT INTO legacy VALUES (1, 'naïve'), (2, NULL);
CREATE USER 'reader'@'%' IDENTIFIED BY 'reader-pw-0a19';
GRANT SELECT ON shop.* TO 'reader'@'%';
GRANT SELECT (id, name) ON shop.customers TO 'reader'@'%';
GRANT EXECUTE ON PROCEDURE shop.add_order TO 'reader'@'%';
CREATE ROLE analyst;
GRANT SELECT ON `reports-2024`.* TO analyst;
GRANT analyst TO 'reader'@'%';
SET DEFAULT ROLE analyst FOR 'reader'@'%';
"""

SYSTEM = "('information_schema', 'performance_schema', 'mysql', 'sys')"
_COLUMNS = re.compile(r"\((`[^)]*`)\)")


def quote(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


# --- helpers ---------------------------------------------------------------------


def sql(adapter: DockerAdapter, container_id: str, script: str, *, user: str = "root",
        password: str = ROOT_PASSWORD, database: str | None = None) -> str:
    """Run ``script`` with the mariadb client over the socket, the password in
    the exec environment; return stdout (batch mode, no column names)."""
    argv = ["mariadb", f"--user={user}", "--protocol=socket", "--batch", "--skip-column-names",
            "--default-character-set=utf8mb4"]
    if database:
        argv.append(f"--database={database}")
    result = adapter.run(container_id, argv, env={"MYSQL_PWD": password},
                         stdin=[script.encode()], check=False)
    if result.exit_code != 0:
        raise AssertionError(f"mariadb exited {result.exit_code}: {result.stderr.strip()}")
    return result.stdout.decode()


def table_fingerprints(adapter: DockerAdapter, container_id: str, *, user: str = "root",
                       password: str = ROOT_PASSWORD) -> dict[str, list[str]]:
    """Per base table: its definition, row count and CHECKSUM TABLE."""
    listing = sql(adapter, container_id,
                  "SELECT TABLE_SCHEMA, TABLE_NAME FROM information_schema.TABLES "
                  f"WHERE TABLE_SCHEMA NOT IN {SYSTEM} AND TABLE_TYPE = 'BASE TABLE' "
                  "ORDER BY 1, 2", user=user, password=password)
    found = {}
    for line in listing.splitlines():
        schema, table = line.split("\t")
        name = f"{quote(schema)}.{quote(table)}"
        found[f"{schema}.{table}"] = sql(
            adapter, container_id, f"SHOW CREATE TABLE {name}; SELECT COUNT(*) FROM {name}; "
            f"CHECKSUM TABLE {name} EXTENDED;", user=user, password=password).splitlines()
    return found


def fingerprint(adapter: DockerAdapter, container_id: str, *, user: str = "root",
                password: str = ROOT_PASSWORD) -> dict[str, Any]:
    """Everything the restore must reproduce: per table its definition, row
    count and CHECKSUM TABLE; the views, routines, triggers and events with
    their definitions; what the view and the function compute; and (as root)
    the extra accounts, their grants and whether their passwords work."""
    def run(script: str) -> list[str]:
        return sql(adapter, container_id, script, user=user, password=password).splitlines()

    found: dict[str, Any] = {
        "databases": run(f"SELECT SCHEMA_NAME, DEFAULT_CHARACTER_SET_NAME FROM "
                         f"information_schema.SCHEMATA WHERE SCHEMA_NAME NOT IN {SYSTEM} "
                         "ORDER BY 1"),
        "tables": table_fingerprints(adapter, container_id, user=user, password=password),
        "views": run("SELECT TABLE_SCHEMA, TABLE_NAME, VIEW_DEFINITION, DEFINER, SECURITY_TYPE "
                     f"FROM information_schema.VIEWS WHERE TABLE_SCHEMA NOT IN {SYSTEM} "
                     "ORDER BY 1, 2"),
        "routines": run("SELECT ROUTINE_SCHEMA, ROUTINE_NAME, ROUTINE_TYPE, DTD_IDENTIFIER, "
                        "ROUTINE_DEFINITION, DEFINER, SQL_DATA_ACCESS FROM "
                        f"information_schema.ROUTINES WHERE ROUTINE_SCHEMA NOT IN {SYSTEM} "
                        "ORDER BY 1, 2"),
        "triggers": run("SELECT TRIGGER_SCHEMA, TRIGGER_NAME, EVENT_MANIPULATION, "
                        "EVENT_OBJECT_TABLE, ACTION_TIMING, ACTION_STATEMENT, DEFINER FROM "
                        f"information_schema.TRIGGERS WHERE TRIGGER_SCHEMA NOT IN {SYSTEM} "
                        "ORDER BY 1, 2"),
        "events": run("SELECT EVENT_SCHEMA, EVENT_NAME, EVENT_DEFINITION, INTERVAL_VALUE, "
                      "INTERVAL_FIELD, STARTS, STATUS, DEFINER FROM information_schema.EVENTS "
                      "ORDER BY 1, 2"),
        "computed": run("SELECT COUNT(*), SUM(total) FROM shop.big_orders; "
                        "SELECT shop.customer_total(42), shop.customer_total(4999);"),
    }
    if user == "root":
        # The columns of a column grant are listed in hash order; sort them.
        found["accounts"] = [_COLUMNS.sub(lambda m: "(" + ", ".join(sorted(
            m.group(1).split(", "))) + ")", line) for line in run(
            "SELECT User, Host, is_role, default_role FROM mysql.user "
            "WHERE User NOT IN ('root', 'mariadb.sys') ORDER BY 1, 2; "
            "SHOW GRANTS FOR 'reader'@'%'; SHOW GRANTS FOR analyst; SHOW GRANTS FOR 'app'@'%';")]
        login = adapter.run(container_id, [
            "mariadb", "--user=reader", "--protocol=tcp", "--host=127.0.0.1", "--batch",
            "--skip-column-names", "-e",
            "SELECT CURRENT_ROLE(), COUNT(*) FROM `reports-2024`.kpi"],
            env={"MYSQL_PWD": READER_PASSWORD}, check=False)
        found["reader_login"] = (login.exit_code, login.stdout.decode().strip())
    return found


def _tar(files: Mapping[str, bytes], mode: int) -> bytes:
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        for directory in sorted({posixpath.dirname(name) for name in files} - {""}):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)
        for name, body in files.items():
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(body), mode
            tar.addfile(info, io.BytesIO(body))
    return archive.getvalue()


class MariaDBContainers:
    """Starts labelled containers of the test image on fresh volumes and
    removes them (and the volumes) again."""

    def __init__(self, client: docker.DockerClient, network: str, image: str,
                 adapter: DockerAdapter) -> None:
        self.client = client
        self.network = network
        self.image = image
        self.adapter = adapter
        self.containers: list[Container] = []
        self.volumes: list[str] = []

    def start(self, env: Mapping[str, str], init_scripts: Mapping[str, bytes] | None = None,
              secrets_files: Mapping[str, bytes] | None = None) -> Container:
        """Create and start a container; ``init_scripts`` go to
        /docker-entrypoint-initdb.d and ``secrets_files`` to /run/secrets
        before it starts."""
        name = f"hf-test-mariadb-{secrets.token_hex(4)}"
        volume = f"{name}-data"
        self.client.volumes.create(name=volume, labels={TEST_LABEL: "1"})
        self.volumes.append(volume)
        container = self.client.containers.create(
            self.image, name=name, environment=dict(env), network=self.network,
            labels={TEST_LABEL: "1", "holdfast.enable": "true"},
            volumes={volume: {"bind": "/var/lib/mysql", "mode": "rw"}},
        )
        self.containers.append(container)
        if init_scripts:
            container.put_archive("/docker-entrypoint-initdb.d", _tar(init_scripts, 0o755))
        if secrets_files:
            container.put_archive("/run", _tar({"secrets/" + name: body for name, body
                                                in secrets_files.items()}, 0o444))
        container.start()
        return container

    def wait(self, container: Container, user: str = "root",
             password: str = ROOT_PASSWORD) -> Container:
        """Until an authenticated query over TCP works: only the final server
        listens on TCP. Fails the test with the log tail if it exits."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        last = ""
        while True:
            container.reload()
            if container.status in ("exited", "dead"):
                pytest.fail(f"{container.name} exited: {container.logs(tail=20)!r}")
            if container.status == "running":
                probe = self.adapter.run(container.id, [
                    "mariadb", f"--user={user}", "--protocol=tcp", "--host=127.0.0.1",
                    "--batch", "--skip-column-names", "-e", "SELECT 1"],
                    env={"MYSQL_PWD": password}, check=False)
                if probe.exit_code == 0 and probe.stdout.strip() == b"1":
                    return container
                last = probe.stderr.strip()
            if time.monotonic() > deadline:
                pytest.fail(f"mariadb in {container.name} not ready ({last}): "
                            f"{container.logs(tail=20)!r}")
            time.sleep(0.25)

    def make(self, env: Mapping[str, str], user: str = "root",
             password: str = ROOT_PASSWORD) -> Container:
        return self.wait(self.start(env), user, password)

    def remove_all(self) -> None:
        for container in reversed(self.containers):
            with contextlib.suppress(NotFound):
                container.remove(force=True, v=True)
        for volume in self.volumes:
            with contextlib.suppress(NotFound, APIError):
                self.client.volumes.get(volume).remove(force=True)


@pytest.fixture(scope="module")
def adapter() -> Iterator[DockerAdapter]:
    adapter = DockerAdapter()
    yield adapter
    adapter.close()


@pytest.fixture(scope="session")
def mariadb_image(docker_client: docker.DockerClient) -> str:
    return require_image(docker_client, MARIADB_IMAGE)


@pytest.fixture
def containers(docker_client: docker.DockerClient, test_network: str, mariadb_image: str,
               adapter: DockerAdapter) -> Iterator[MariaDBContainers]:
    made = MariaDBContainers(docker_client, test_network, mariadb_image, adapter)
    yield made
    made.remove_all()


@pytest.fixture(scope="class")
def class_containers(docker_client: docker.DockerClient, test_network: str, mariadb_image: str,
                     adapter: DockerAdapter) -> Iterator[MariaDBContainers]:
    made = MariaDBContainers(docker_client, test_network, mariadb_image, adapter)
    yield made
    made.remove_all()


def read_into_dump(chunks: Iterator[bytes], extra: int = 1) -> list[bytes]:
    """Consume an archive stream until the dump process's own output has
    begun to arrive, so that process is running (and, with more data than
    the pipes hold, blocked on its output)."""
    header = SQL_MEMBER.encode()
    taken = []
    for chunk in chunks:
        taken.append(chunk)
        if chunk.startswith(b"M") and chunk.endswith(header):
            break
    taken.extend(itertools.islice(chunks, extra))
    return taken


def seed(adapter: DockerAdapter, container: Container) -> None:
    sql(adapter, container.id, SEED_SHOP, user="app", password=APP_PASSWORD, database="shop")
    sql(adapter, container.id, SEED_ROOT)


# --- the contract, for both engines ------------------------------------------------


class _MariaDBContract(EngineContract):
    env: ClassVar[dict[str, str]]
    engine_class: ClassVar[type[MariaDBEngine]]

    @pytest.fixture
    def engine(self) -> MariaDBEngine:
        return self.engine_class()

    # The contract only reads the source, so one seeded source serves the class.
    @pytest.fixture(scope="class")
    def source(self, class_containers: MariaDBContainers,
               adapter: DockerAdapter) -> DatabaseContainer:
        container = class_containers.make(self.env)
        seed(adapter, container)
        return adapter.inspect(container.id)

    @pytest.fixture
    def fresh_target(self, containers: MariaDBContainers,
                     adapter: DockerAdapter) -> DatabaseContainer:
        return adapter.inspect(containers.make(self.env).id)

    @pytest.fixture
    def fingerprint(self, adapter: DockerAdapter) -> Any:
        return lambda container: fingerprint(adapter, container.id)

    @pytest.fixture
    def known_figures(self) -> dict[str, int]:
        return {"shop.customers": 5000, "shop.orders": 20000, "shop.blobs": 501,
                "reports-2024.kpi": 366, "reports-2024.legacy": 2}

    @pytest.fixture
    def remove_one(self, adapter: DockerAdapter) -> Any:
        def remove(container: DatabaseContainer) -> set[str]:
            sql(adapter, container.id, "DELETE FROM shop.blobs WHERE id = 1000")
            return {"shop.blobs"}
        return remove


class TestMariaDBEngine(_MariaDBContract):
    env = MARIADB_STYLE_ENV
    engine_class = MariaDBEngine

    def test_fingerprint_sees_everything_seeded(self, source: DatabaseContainer,
                                                adapter: DockerAdapter) -> None:
        found = fingerprint(adapter, source.id)
        counts = {table: lines[1] for table, lines in found["tables"].items()}
        assert counts == {"reports-2024.kpi": "366", "reports-2024.legacy": "2",
                          "shop.blobs": "501", "shop.customers": "5000",
                          "shop.orders": "20000"}
        assert [line.split("\t")[1] for line in found["routines"]] == ["add_order",
                                                                       "customer_total"]
        assert [line.split("\t")[1] for line in found["triggers"]] == ["orders_note"]
        assert [line.split("\t")[1] for line in found["events"]] == ["nightly_cleanup"]
        assert [line.split("\t")[1] for line in found["views"]] == ["big_orders"]
        assert found["reader_login"] == (0, "analyst\t366")
        assert any("latin1" in line for line in found["tables"]["reports-2024.kpi"])

    def test_selected_databases_only(self, engine: MariaDBEngine, source: DatabaseContainer,
                                     fresh_target: DatabaseContainer, adapter: DockerAdapter,
                                     caplog: pytest.LogCaptureFixture) -> None:
        dump = engine.dump(source, adapter, ["reports-2024"])
        assert dump.databases == ("reports-2024",)
        assert engine.restore(fresh_target, adapter, list(dump.chunks)) == ["reports-2024"]
        original = table_fingerprints(adapter, source.id)
        assert table_fingerprints(adapter, fresh_target.id) == {
            name: lines for name, lines in original.items() if name.startswith("reports-2024.")}
        # The accounts still come along; only reader's grants on the tables of
        # shop, which was not selected, cannot apply, and say so.
        assert "statement(s) failed" in caplog.text and "shop" in caplog.text
        login = adapter.run(fresh_target.id, [
            "mariadb", "--user=reader", "--protocol=tcp", "--host=127.0.0.1", "--batch",
            "--skip-column-names", "-e", "SELECT CURRENT_ROLE(), COUNT(*) FROM `reports-2024`.kpi"],
            env={"MYSQL_PWD": READER_PASSWORD}, check=False)
        assert (login.exit_code, login.stdout.strip()) == (0, b"analyst\t366")
        with pytest.raises(DumpFailed, match="nope not found"):
            engine.dump(source, adapter, ["shop", "nope"])


class TestMySQLEngineOnMariaDBImage(_MariaDBContract):
    """The mariadb image also answers to the MYSQL_* names and ships the
    mysqldump/mysql names, which the mysql engine prefers."""

    env = MYSQL_STYLE_ENV
    engine_class = MySQLEngine

    def test_runs_the_mysql_named_tools(self, engine: MariaDBEngine, source: DatabaseContainer,
                                        adapter: DockerAdapter) -> None:
        assert engine.credentials(source).source == "MYSQL_ROOT_PASSWORD"
        recorder = RecordingExec(adapter)
        members = {member.name: member.read_small(64 * 1024 * 1024)
                   for member in unpack(list(engine.dump(source, recorder).chunks))}
        meta = json.loads(members[META_MEMBER])
        # mysqldump is MariaDB's here, so the accounts come along too.
        assert meta["tool"] == "mysqldump" and "MariaDB" in meta["tool_version"]
        assert meta["accounts"] is True and ACCOUNTS_MEMBER in members
        lookups = [argv for argv in recorder.argvs if argv[-2:] == ["mysqldump", "mariadb-dump"]]
        assert len(lookups) == 1, recorder.argvs
        launched = [argv for argv in recorder.argvs if "HOLDFAST_PASSWORD_FILE" in argv[2]]
        assert {argv[3] for argv in launched} == {"mysql", "mysqldump"}, launched
        assert all("for tool in mysql mariadb;" in argv[2] for argv in launched
                   if argv[3] == "mysql")


# --- beyond the contract -----------------------------------------------------------

WRITES_SEED = """
USE shop;
CREATE TABLE shop.accounts (id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB;
INSERT INTO shop.accounts SELECT seq, 1000 FROM seq_1_to_10;
CREATE TABLE shop.ledger (id BIGINT PRIMARY KEY AUTO_INCREMENT, src INT NOT NULL,
                          dst INT NOT NULL, amount INT NOT NULL) ENGINE=InnoDB;
-- Sorts between accounts and ledger, so a dump without one snapshot would
-- read them seconds apart while the writer runs.
CREATE TABLE shop.bulk (id INT PRIMARY KEY, filler VARCHAR(300)) ENGINE=InnoDB;
INSERT INTO shop.bulk SELECT seq, REPEAT(MD5(seq), 8) FROM seq_1_to_{bulk_rows};
CREATE DATABASE `reports-2024`;
CREATE TABLE `reports-2024`.tx_count (n BIGINT NOT NULL) ENGINE=InnoDB;
INSERT INTO `reports-2024`.tx_count VALUES (0);
"""
ACCOUNTS = 10
INITIAL_BALANCE = 1000


def _transfers(stop: threading.Event, rng: random.Random) -> Iterator[bytes]:
    """Transactions that move money between accounts, log it in the ledger and
    count it in another database, keeping sum(balance) and count(ledger) ==
    tx_count.n true at every commit."""
    while not stop.is_set():
        src, dst = rng.sample(range(1, ACCOUNTS + 1), 2)
        amount = rng.randint(1, 50)
        yield (f"START TRANSACTION;"
               f"UPDATE shop.accounts SET balance = balance - {amount} WHERE id = {src};"
               f"UPDATE shop.accounts SET balance = balance + {amount} WHERE id = {dst};"
               f"INSERT INTO shop.ledger (src, dst, amount) VALUES ({src}, {dst}, {amount});"
               f"UPDATE `reports-2024`.tx_count SET n = n + 1;"
               f"COMMIT;\n").encode()
        time.sleep(0.003)


def _ledger_count(adapter: DockerAdapter, container_id: str) -> int:
    return int(sql(adapter, container_id, "SELECT COUNT(*) FROM shop.ledger").strip())


def test_dump_under_concurrent_writes_is_one_consistent_snapshot(
    containers: MariaDBContainers, adapter: DockerAdapter,
) -> None:
    engine = MariaDBEngine()
    source = containers.make(MARIADB_STYLE_ENV)
    sql(adapter, source.id, WRITES_SEED.replace("{bulk_rows}", "80000"))  # ~20 MB
    stop = threading.Event()
    writer_result: list[Any] = []

    def write() -> None:
        try:
            writer_result.append(adapter.run(
                source.id, ["mariadb", "--user=root", "--protocol=socket", "--batch"],
                env={"MYSQL_PWD": ROOT_PASSWORD}, stdin=_transfers(stop, random.Random(7))))
        except Exception as exc:  # reported by the assertions below
            writer_result.append(exc)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        deadline = time.monotonic() + 30
        while _ledger_count(adapter, source.id) < 100:
            assert time.monotonic() < deadline, "the writer does not commit"
            time.sleep(0.1)
        before = _ledger_count(adapter, source.id)
        chunks = iter(engine.dump(adapter.inspect(source.id), adapter).chunks)
        data = read_into_dump(chunks)
        # The dump now waits on the socket, in the middle of shop.bulk, while
        # the transfers go on.
        time.sleep(1.5)
        during = _ledger_count(adapter, source.id)
        data.extend(chunks)
        time.sleep(0.3)
    finally:
        stop.set()
        writer.join(timeout=60)
    assert len(writer_result) == 1 and isinstance(writer_result[0], ExecResult), writer_result
    after = _ledger_count(adapter, source.id)
    assert before < during < after

    target = containers.make(MARIADB_STYLE_ENV)
    assert engine.restore(adapter.inspect(target.id), adapter, data) == ["reports-2024", "shop"]
    restored = _ledger_count(adapter, target.id)
    # The snapshot is one instant of the source's history: taken after the
    # dump started and before the writer's later commits ...
    assert before <= restored < during
    # ... across tables and databases: the counter committed in the same
    # transactions, the balances the ledger replays to, and the ledger the
    # source really had (its first `restored` rows).
    assert sql(adapter, target.id, "SELECT n FROM `reports-2024`.tx_count").strip() == \
        str(restored)
    balances = dict.fromkeys(range(1, ACCOUNTS + 1), INITIAL_BALANCE)
    for line in sql(adapter, target.id,
                    "SELECT src, dst, amount FROM shop.ledger ORDER BY id").splitlines():
        src, dst, amount = map(int, line.split("\t"))
        balances[src] -= amount
        balances[dst] += amount
    got = {int(k): int(v) for k, v in (line.split("\t") for line in sql(
        adapter, target.id, "SELECT id, balance FROM shop.accounts").splitlines())}
    assert got == balances
    assert sum(got.values()) == ACCOUNTS * INITIAL_BALANCE
    ledger_digest = ("SELECT COUNT(*), MAX(id), SHA2(GROUP_CONCAT(CONCAT_WS(',', id, src, dst, "
                     "amount) ORDER BY id SEPARATOR ';'), 256) FROM shop.ledger")
    long_concat = "SET SESSION group_concat_max_len = 1 << 30; "
    assert sql(adapter, target.id, long_concat + ledger_digest) == sql(
        adapter, source.id, long_concat + ledger_digest + f" WHERE id <= {restored}")
    assert sql(adapter, target.id, "SELECT COUNT(*) FROM shop.bulk").strip() == "80000"


def _storage_is_empty(storage: LocalStorage, root: Path) -> None:
    assert list(storage.list()) == []
    assert [p for p in root.rglob("*") if p.is_file()] == []


def test_wrong_password_fails_in_one_line_and_stores_nothing(
    containers: MariaDBContainers, adapter: DockerAdapter, tmp_path: Path,
) -> None:
    source = containers.make(MARIADB_STYLE_ENV)
    sql(adapter, source.id, "ALTER USER 'root'@'localhost' IDENTIFIED BY 'rotated-pw';"
                            "ALTER USER 'root'@'%' IDENTIFIED BY 'rotated-pw';")
    storage = LocalStorage("local", tmp_path.as_uri())
    with pytest.raises(DumpFailed) as raised:
        take_snapshot(snapshot_id="s1", instance="shop", created_at=utcnow(),
                      container=adapter.inspect(source.id), engine=MariaDBEngine(),
                      runner=adapter, storage=storage)
    message = str(raised.value)
    assert "\n" not in message
    assert "Access denied" in message and "MARIADB_ROOT_PASSWORD" in message
    assert ROOT_PASSWORD not in message and "rotated-pw" not in message
    _storage_is_empty(storage, tmp_path)


class StoppingExec:
    """The real adapter, but once the dump stream has delivered a few chunks
    the container goes away, from another thread while the dump is read:
    ``docker stop`` (the server ends the dump's connection as it shuts down)
    or ``docker kill`` (the dump process dies with the container)."""

    def __init__(self, real: DockerAdapter, container: Container, how: str) -> None:
        self.real = real
        self.container = container
        self.how = how
        self.stopper: threading.Thread | None = None

    def stream(self, container_id: str, argv: Sequence[str], *,
               env: Mapping[str, str] | None = None, user: str | None = None,
               stdin: Iterable[bytes] | None = None) -> Iterator[bytes]:
        for index, chunk in enumerate(self.real.stream(container_id, argv, env=env, user=user,
                                                       stdin=stdin)):
            if index == 3 and self.stopper is None:
                action = self.container.stop if self.how == "stop" else self.container.kill
                self.stopper = threading.Thread(target=action, daemon=True)
                self.stopper.start()
            yield chunk

    def run(self, *args: Any, **kwargs: Any) -> ExecResult:
        return self.real.run(*args, **kwargs)


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_container_going_away_mid_dump_fails_and_stores_nothing(
    containers: MariaDBContainers, adapter: DockerAdapter, tmp_path: Path, how: str,
) -> None:
    source = containers.make(MARIADB_STYLE_ENV)
    sql(adapter, source.id, WRITES_SEED.replace("{bulk_rows}", "200000"))  # ~50 MB
    storage = LocalStorage("local", tmp_path.as_uri())
    runner = StoppingExec(adapter, source, how)
    with pytest.raises(DumpFailed) as raised:
        take_snapshot(snapshot_id="s1", instance="shop", created_at=utcnow(),
                      container=adapter.inspect(source.id), engine=MariaDBEngine(),
                      runner=runner, storage=storage)
    assert runner.stopper is not None, "the dump ended before the container went away"
    runner.stopper.join(timeout=30)
    assert "\n" not in str(raised.value)
    deadline = time.monotonic() + 30
    while source.status != "exited" and time.monotonic() < deadline:
        time.sleep(0.2)
        source.reload()
    assert source.status == "exited"
    _storage_is_empty(storage, tmp_path)




def test_password_never_reaches_a_command_line(
    containers: MariaDBContainers, adapter: DockerAdapter, docker_client: docker.DockerClient,
) -> None:
    engine = MariaDBEngine()
    source = containers.make(MARIADB_STYLE_ENV)
    sql(adapter, source.id, WRITES_SEED.replace("{bulk_rows}", "80000"))
    recorder = RecordingExec(adapter)
    chunks = iter(engine.dump(adapter.inspect(source.id), recorder).chunks)
    data = read_into_dump(chunks)
    processes = [line for _, line in top_processes(docker_client, source.id)]
    data.extend(chunks)
    assert any(line.startswith("mariadb-dump ") for line in processes), processes
    for line in processes:
        assert ROOT_PASSWORD not in line, line
    target = adapter.inspect(containers.make(MARIADB_STYLE_ENV).id)
    assert engine.is_ready(target, recorder)
    assert engine.restore(target, recorder, data) == ["reports-2024", "shop"]
    assert sql(adapter, target.id, "SELECT COUNT(*) FROM shop.bulk").strip() == "80000"
    assert len(recorder.argvs) >= 6
    for argv in recorder.argvs:
        assert not any(ROOT_PASSWORD in arg for arg in argv), argv


def test_not_ready_while_the_init_time_server_runs(
    containers: MariaDBContainers, adapter: DockerAdapter,
) -> None:
    """The image initialises with a temporary --skip-networking server, which
    accepts the root password on its socket while the init scripts run;
    readiness must wait for the final server."""
    env = {k: v for k, v in MARIADB_STYLE_ENV.items() if k != "MARIADB_INITDB_SKIP_TZINFO"}
    container = containers.start(env, {"slow-init.sh": b"#!/bin/sh\nsleep 6\n"})
    engine = MariaDBEngine()
    seen_temp_server_not_ready = False
    deadline = time.monotonic() + 90
    ready = False
    while time.monotonic() < deadline:
        state = adapter.inspect(container.id)
        assert state.running, container.logs(tail=20)
        socket_up = adapter.run(container.id, [
            "mariadb", "--user=root", "--protocol=socket", "-e", "SELECT 1"],
            env={"MYSQL_PWD": ROOT_PASSWORD}, check=False).exit_code == 0
        initialising = b"init process done" not in container.logs()
        ready = engine.is_ready(state, adapter)
        if initialising and socket_up:
            assert not ready, "ready reported while the init-time server was running"
            seen_temp_server_not_ready = True
        if ready:
            break
        time.sleep(0.3)
    assert seen_temp_server_not_ready, "never observed the init-time server"
    assert ready and b"init process done" in container.logs()
    assert engine.is_ready(adapter.inspect(container.id), adapter)


def test_application_user_without_root_password_round_trips_its_database(
    containers: MariaDBContainers, adapter: DockerAdapter,
) -> None:
    """With a random root password Holdfast can only be the application user:
    it sees and restores its own database, without the accounts."""
    engine = MariaDBEngine()
    source = containers.make(APP_ONLY_ENV, user="app", password=APP_PASSWORD)
    sql(adapter, source.id, SEED_SHOP, user="app", password=APP_PASSWORD, database="shop")
    source_state = adapter.inspect(source.id)
    assert engine.credentials(source_state).user == "app"
    dump = engine.dump(source_state, adapter)
    assert dump.databases == ("shop",)
    data = list(dump.chunks)
    target = adapter.inspect(containers.make(APP_ONLY_ENV, user="app",
                                             password=APP_PASSWORD).id)
    assert engine.is_ready(target, adapter)
    assert engine.restore(target, adapter, data) == ["shop"]
    assert fingerprint(adapter, target.id, user="app", password=APP_PASSWORD) == \
        fingerprint(adapter, source.id, user="app", password=APP_PASSWORD)


def test_is_ready_is_false_not_an_error_while_nothing_listens(
    containers: MariaDBContainers, adapter: DockerAdapter,
) -> None:
    container = containers.start(MARIADB_STYLE_ENV)
    state = adapter.inspect(container.id)
    # Straight after start, before any server is up; polled until it is.
    results = []
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        results.append(MariaDBEngine().is_ready(state, adapter))
        if results[-1]:
            break
        time.sleep(0.1)
    assert results[0] is False and results[-1] is True


def test_root_password_from_a_secret_file_stays_in_the_container(
    containers: MariaDBContainers, adapter: DockerAdapter,
) -> None:
    """MARIADB_ROOT_PASSWORD_FILE (a Docker secret): the shell in the
    container reads the file for the tools, Holdfast never holds the value."""
    env = {"MARIADB_ROOT_PASSWORD_FILE": "/run/secrets/db-root", "MARIADB_DATABASE": "shop",
           "MARIADB_INITDB_SKIP_TZINFO": "1"}
    secret = {"db-root": ROOT_PASSWORD.encode() + b"\n"}
    engine = MariaDBEngine()
    source = containers.wait(containers.start(env, secrets_files=secret))
    sql(adapter, source.id, "CREATE TABLE shop.t (id INT PRIMARY KEY, v VARBINARY(8));"
                            "INSERT INTO shop.t VALUES (1, 0x00FF), (2, NULL);")
    state = adapter.inspect(source.id)
    creds = engine.credentials(state)
    assert creds.password is None and creds.password_file == "/run/secrets/db-root"
    recorder = RecordingExec(adapter)
    data = list(engine.dump(state, recorder).chunks)
    target = adapter.inspect(containers.wait(containers.start(env, secrets_files=secret)).id)
    assert engine.is_ready(target, recorder)
    assert engine.restore(target, recorder, data) == ["shop"]
    assert sql(adapter, target.id, "SELECT id, HEX(v) FROM shop.t ORDER BY id") == \
        "1\t00FF\n2\tNULL\n"
    for argv in recorder.argvs:
        assert not any(ROOT_PASSWORD in arg for arg in argv), argv
    wrong = DatabaseContainer(id=target.id, name=target.name, image=target.image, image_id="",
                              env={"MARIADB_ROOT_PASSWORD_FILE": "/run/secrets/missing"})
    assert engine.is_ready(wrong, adapter) is False
    with pytest.raises(DumpFailed, match=r"cannot list databases.*No such file"):
        engine.dump(wrong, adapter)
