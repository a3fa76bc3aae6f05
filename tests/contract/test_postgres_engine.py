"""The Postgres engine runs the shared engine contract on real containers, plus
its own readiness check against the init-time temporary server."""

from __future__ import annotations

import io
import tarfile
import time
from typing import Any

import pytest

from backup.engines.pgplan import PieceSizes
from backup.engines.postgres import PostgresEngine
from backup.errors import MissingCredentials
from backup.types import DatabaseContainer
from service.adapters.docker import DockerAdapter
from tests.contract.engine_contract import EngineContract
from tests.harness.docker_fixtures import DEFAULT_POSTGRES_ENV, TEST_LABEL, psql

pytestmark = pytest.mark.docker

SEED = """
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, joined date);
INSERT INTO customers (name, joined)
  SELECT 'customer ' || g, date '2020-01-01' + g FROM generate_series(1, 5000) g;
CREATE TABLE orders (id bigserial PRIMARY KEY, customer int REFERENCES customers,
                     total numeric(10,2), note text);
INSERT INTO orders (customer, total, note)
  SELECT 1 + g % 5000, (g % 997) / 3.0, md5(g::text) FROM generate_series(1, 20000) g;
CREATE VIEW big_orders AS SELECT * FROM orders WHERE total > 300;
CREATE FUNCTION touch() RETURNS trigger LANGUAGE plpgsql AS
  $$ BEGIN NEW.note := coalesce(NEW.note, 'touched'); RETURN NEW; END $$;
CREATE TRIGGER orders_touch BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION touch();
CREATE ROLE reader LOGIN PASSWORD 'reader-pw';
GRANT SELECT ON ALL TABLES IN SCHEMA public TO reader;
"""

FINGERPRINT = """
SELECT string_agg(line, E'\\n' ORDER BY line) FROM (
  SELECT 'customers ' || count(*) || ' ' || md5(string_agg(c::text, '|' ORDER BY c.id))
    AS line FROM customers c
  UNION ALL SELECT 'orders ' || count(*) || ' ' || md5(string_agg(o::text, '|' ORDER BY o.id))
    FROM orders o
  UNION ALL SELECT 'view ' || count(*) FROM big_orders
  UNION ALL SELECT 'seq ' || last_value FROM orders_id_seq
  UNION ALL SELECT 'trigger ' || tgname FROM pg_trigger WHERE NOT tgisinternal
  UNION ALL SELECT 'role ' || rolname FROM pg_roles WHERE rolname !~ '^pg_'
) lines
"""


@pytest.fixture
def adapter() -> Any:
    adapter = DockerAdapter()
    yield adapter
    adapter.close()


class TestPostgresEngine(EngineContract):
    @pytest.fixture
    def engine(self) -> PostgresEngine:
        return PostgresEngine()

    labels: dict[str, str] = {}

    @pytest.fixture
    def source(self, postgres_container_factory: Any, adapter: DockerAdapter) -> DatabaseContainer:
        container = postgres_container_factory(labels=self.labels)
        psql(container, SEED)
        psql(container, "CREATE DATABASE reports")
        psql(container, "CREATE TABLE kpi (day date PRIMARY KEY, value int);"
                        "INSERT INTO kpi SELECT d::date, 7 FROM generate_series("
                        "'2026-01-01'::date, '2026-03-01', '1 day') d", db="reports")
        return adapter.inspect(container.id)

    @pytest.fixture
    def fresh_target(self, postgres_container_factory: Any,
                     adapter: DockerAdapter) -> DatabaseContainer:
        return adapter.inspect(postgres_container_factory().id)

    @pytest.fixture
    def known_figures(self) -> dict[str, int]:
        return {"appdb.public.customers": 5000, "appdb.public.orders": 20000,
                "reports.public.kpi": 60, "role:reader": 1, "role:app": 1,
                "database:reports": 1, "database:appdb": 1}

    @pytest.fixture
    def remove_one(self, docker_client: Any) -> Any:
        def remove(container: DatabaseContainer) -> set[str]:
            psql(docker_client.containers.get(container.id), "DELETE FROM orders WHERE id = 7")
            return {"appdb.public.orders"}
        return remove

    @pytest.fixture
    def fingerprint(self, docker_client: Any) -> Any:
        def take(container: DatabaseContainer) -> tuple[str, str]:
            real = docker_client.containers.get(container.id)
            reports = psql(real, "SELECT count(*) || ' ' || md5(string_agg(k::text, '|' "
                                 "ORDER BY k.day)) FROM kpi k", db="reports")
            return psql(real, FINGERPRINT), reports
        return take


class TestPostgresEngineParallel(TestPostgresEngine):
    """The whole contract again for a parallel dump (``holdfast.jobs=2``, data
    format v2), with sizes so small that ``orders`` and ``customers`` are cut
    into COPY pieces and their indexes built in batches of their own."""

    labels = {"holdfast.jobs": "2"}

    @pytest.fixture
    def engine(self) -> PostgresEngine:
        return PostgresEngine(PieceSizes(split_min_pages=8, piece_min_pages=8))


def test_missing_password_is_reported_without_touching_the_container() -> None:
    container = DatabaseContainer(id="x", name="billing", image="postgres:15", image_id="",
                                  env={"POSTGRES_USER": "app"})
    with pytest.raises(MissingCredentials, match="billing has no POSTGRES_PASSWORD"):
        PostgresEngine().check(container)
    trusting = DatabaseContainer(id="x", name="b", image="postgres:15", image_id="",
                                 env={"POSTGRES_HOST_AUTH_METHOD": "trust"})
    PostgresEngine().check(trusting)


def test_not_ready_while_the_init_time_server_runs(
    docker_client: Any, test_network: str, postgres_image: str, adapter: DockerAdapter,
) -> None:
    """The official image's init runs a temporary socket-only server; readiness
    must not be reported until the final server is up."""
    container = docker_client.containers.create(
        postgres_image, environment=DEFAULT_POSTGRES_ENV, network=test_network,
        labels={TEST_LABEL: "1"},
    )
    try:
        script = b"#!/bin/sh\nsleep 6\n"
        archive = io.BytesIO()
        with tarfile.open(fileobj=archive, mode="w") as tar:
            info = tarfile.TarInfo("slow-init.sh")
            info.size, info.mode = len(script), 0o755
            tar.addfile(info, io.BytesIO(script))
        container.put_archive("/docker-entrypoint-initdb.d", archive.getvalue())
        container.start()
        engine = PostgresEngine()
        seen_temp_server_not_ready = False
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            state = adapter.inspect(container.id)
            socket_up = container.exec_run(["pg_isready", "-q"]).exit_code == 0
            ready = engine.is_ready(state, adapter)
            initialising = b"init process complete" not in container.logs()
            if initialising and socket_up:
                assert not ready, "ready reported while the init-time server was running"
                seen_temp_server_not_ready = True
            if ready:
                break
            time.sleep(0.3)
        assert seen_temp_server_not_ready, "never observed the init-time server"
        assert engine.is_ready(adapter.inspect(container.id), adapter)
    finally:
        container.remove(force=True, v=True)
