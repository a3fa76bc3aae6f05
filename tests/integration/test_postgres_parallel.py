"""Parallel Postgres dumps (``holdfast.jobs``, data format v2) on real containers.

The round trip covers what a per-table COPY can get wrong (generated and
identity columns, a table without columns, names that need quoting,
partitions, unlogged tables, large objects, sequences, a materialized view and
its index, foreign keys) and compares the data itself. Under a concurrent
pgbench write load the restored copy must satisfy pgbench's invariant (the
balances of accounts, tellers and branches and the history's deltas sum to the
same), which holds only if every piece read the one exported snapshot.
"""

from __future__ import annotations

import time
from typing import Any

import pytest

from backup import multiplex
from backup.engines.pgplan import PieceSizes
from backup.engines.postgres import PARALLEL_FORMAT, PostgresEngine
from backup.errors import CorruptSnapshot
from service.adapters.docker import DockerAdapter
from tests.harness.docker_fixtures import container_env, psql

pytestmark = pytest.mark.docker

PARALLEL = {"holdfast.jobs": "2"}

EDGES = """
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."We""ird.Name" (id int PRIMARY KEY, "Value" text,
  doubled int GENERATED ALWAYS AS (id * 2) STORED,
  serial_id bigint GENERATED ALWAYS AS IDENTITY);
INSERT INTO "Odd Schema"."We""ird.Name" (id, "Value")
  SELECT g, E'line\\nbreak\\ttab \\\\ ' || g FROM generate_series(1, 30000) g;
CREATE TABLE nothing_but_rows ();
INSERT INTO nothing_but_rows SELECT FROM generate_series(1, 7);
CREATE TABLE parent (id int, part int, body text) PARTITION BY LIST (part);
CREATE TABLE parent_a PARTITION OF parent FOR VALUES IN (1);
CREATE TABLE parent_b PARTITION OF parent FOR VALUES IN (2);
INSERT INTO parent SELECT g, 1 + g % 2, md5(g::text) FROM generate_series(1, 40000) g;
ALTER TABLE parent ADD PRIMARY KEY (id, part);
CREATE UNLOGGED TABLE scratch AS SELECT g AS n FROM generate_series(1, 500) g;
CREATE TABLE owners (id int PRIMARY KEY, name text);
INSERT INTO owners SELECT g, 'owner ' || g FROM generate_series(1, 3000) g;
CREATE TABLE pets (id serial PRIMARY KEY, owner int REFERENCES owners, name text);
INSERT INTO pets (owner, name) SELECT 1 + g % 3000, 'pet ' || g FROM generate_series(1, 60000) g;
CREATE INDEX pets_by_name ON pets (name);
SELECT setval('pets_id_seq', 123456);
CREATE MATERIALIZED VIEW pet_counts AS SELECT owner, count(*) AS n FROM pets GROUP BY owner;
CREATE UNIQUE INDEX pet_counts_owner ON pet_counts (owner);
SELECT lo_from_bytea(424242, 'large object bytes');
"""

FINGERPRINT = """
SELECT string_agg(line, E'\\n' ORDER BY line) FROM (
  SELECT 'odd ' || count(*) || ' ' || md5(string_agg(t::text, '|' ORDER BY id)) AS line
    FROM "Odd Schema"."We""ird.Name" t
  UNION ALL SELECT 'nothing ' || count(*) FROM nothing_but_rows
  UNION ALL SELECT 'parent ' || tableoid::regclass || ' ' || count(*) || ' '
               || md5(string_agg(p::text, '|' ORDER BY id)) FROM parent p GROUP BY tableoid
  UNION ALL SELECT 'scratch ' || count(*) || ' ' || sum(n) FROM scratch
  UNION ALL SELECT 'pets ' || count(*) || ' ' || md5(string_agg(p::text, '|' ORDER BY id))
    FROM pets p
  UNION ALL SELECT 'seq ' || last_value FROM pets_id_seq
  UNION ALL SELECT 'identity ' || max(serial_id) FROM "Odd Schema"."We""ird.Name"
  UNION ALL SELECT 'matview ' || count(*) || ' ' || sum(n) FROM pet_counts
  UNION ALL SELECT 'lo ' || convert_from(lo_get(424242), 'UTF8')
  UNION ALL SELECT 'index ' || indexrelid::regclass FROM pg_index i
    JOIN pg_class c ON c.oid = i.indrelid JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname NOT IN ('pg_catalog', 'pg_toast')
  UNION ALL SELECT 'constraint ' || conname || ' ' || contype::text FROM pg_constraint
    WHERE connamespace <> 'pg_catalog'::regnamespace
) lines
"""

INVARIANT = """
SELECT (SELECT sum(abalance) FROM pgbench_accounts) || ' ' ||
       (SELECT sum(tbalance) FROM pgbench_tellers) || ' ' ||
       (SELECT sum(bbalance) FROM pgbench_branches) || ' ' ||
       (SELECT coalesce(sum(delta), 0) FROM pgbench_history) || ' ' ||
       (SELECT count(*) FROM pgbench_history)
"""

SMALL = PieceSizes(split_min_pages=8, piece_min_pages=32)


@pytest.fixture
def adapter() -> Any:
    real = DockerAdapter()
    yield real
    real.close()


def _member_names(archive: bytes) -> list[str]:
    return multiplex.unpack([archive], sequential=_drain, concurrent=_drain)


def _drain(name: str, data: Any) -> None:
    for _ in data:
        pass


def test_a_parallel_dump_of_awkward_objects_restores_them_all(
        postgres_container_factory: Any, adapter: DockerAdapter) -> None:
    source = postgres_container_factory(labels=PARALLEL)
    psql(source, EDGES)
    engine = PostgresEngine(SMALL)
    dump = engine.dump(adapter.inspect(source.id), adapter)
    archive = b"".join(dump.chunks)
    assert dump.data_format == PARALLEL_FORMAT
    names = _member_names(archive)
    pieces = [n for n in names if "/piece/" in n]
    assert len(pieces) >= 4, names  # pets and the odd table at least are cut
    figures = dump.figures()
    assert figures is not None and figures.values["appdb.public.pets"] == 60000
    assert figures.values["appdb.Odd Schema.We\"ird.Name"] == 30000

    target = postgres_container_factory()
    restored = engine.restore(adapter.inspect(target.id), adapter, [archive])
    assert sorted(restored) == ["appdb", "postgres"]
    assert psql(target, FINGERPRINT) == psql(source, FINGERPRINT)
    assert engine.measure(adapter.inspect(target.id), adapter).values == figures.values


def test_under_a_write_load_every_piece_reads_the_one_snapshot(
        postgres_container_factory: Any, adapter: DockerAdapter) -> None:
    source = postgres_container_factory(labels=PARALLEL)
    env = container_env(source)
    pg = {"PGUSER": env["POSTGRES_USER"], "PGPASSWORD": env["POSTGRES_PASSWORD"]}
    init = source.exec_run(["pgbench", "-i", "-q", "-s", "4", env["POSTGRES_DB"]], environment=pg)
    assert init.exit_code == 0, init.output.decode()[-500:]
    load = source.exec_run(["pgbench", "-c", "3", "-T", "120", "-n", env["POSTGRES_DB"]],
                           environment=pg, detach=True)
    del load
    time.sleep(3)  # the load is running before the dump starts
    before = psql(source, "SELECT count(*) FROM pgbench_history")
    engine = PostgresEngine(PieceSizes(split_min_pages=8, piece_min_pages=64))
    dump = engine.dump(adapter.inspect(source.id), adapter)
    archive = b"".join(dump.chunks)
    after = psql(source, "SELECT count(*) FROM pgbench_history")
    source.exec_run(["pkill", "pgbench"])
    assert int(after) > int(before), "the load did not write during the dump"
    assert sum("/piece/" in n for n in _member_names(archive)) >= 2

    target = postgres_container_factory()
    engine.restore(adapter.inspect(target.id), adapter, [archive])
    sums = psql(target, INVARIANT).split()
    assert sums[0] == sums[1] == sums[2] == sums[3], sums
    assert int(sums[4]) > 0


@pytest.mark.parametrize("cut", [0.3, 0.7, 0.999])
def test_a_truncated_parallel_snapshot_is_refused(
        postgres_container_factory: Any, adapter: DockerAdapter, cut: float) -> None:
    source = postgres_container_factory(labels=PARALLEL)
    psql(source, EDGES)
    engine = PostgresEngine(SMALL)
    archive = b"".join(engine.dump(adapter.inspect(source.id), adapter).chunks)
    target = postgres_container_factory()
    with pytest.raises(CorruptSnapshot):
        engine.restore(adapter.inspect(target.id), adapter, [archive[:int(len(archive) * cut)]])
