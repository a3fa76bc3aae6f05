"""Checkpoints on the command line, on the fakes: ``backup --tag --pin``,
``snapshots --tag`` and its TAGS column, ``restore INSTANCE --tag``, ``pin`` and
``unpin``, ``delete`` of a pinned snapshot, and one-line failures with their
exit codes (2 bad input, 3 not found, 4 conflict)."""

from __future__ import annotations

from typing import Any

import pytest

from backup.pipeline import manifest_key
from backup.types import Manifest
from tests.fakes.services import FakeWorld
from tests.usecases.entrypoints.helpers import add_db
from tests.usecases.entrypoints.test_cli import (  # noqa: F401  (fixtures)
    Cli,
    CliFor,
    _keep_logging,
    cli_for,
    failed,
    ok_json,
)
from tests.usecases.support import objects


def _backup(run: Cli, *args: str) -> dict[str, Any]:
    snapshot: dict[str, Any] = ok_json(run("backup", "shop-db", *args, "--json"))
    return snapshot


def _manifest(world: FakeWorld, snapshot: dict[str, Any]) -> Manifest:
    return Manifest.from_bytes(objects(world)[manifest_key("shop-db", snapshot["id"])])


@pytest.fixture
def run(world: FakeWorld, cli_for: CliFor) -> Cli:  # noqa: F811  (cli_for: the fixture)
    return cli_for(world)


@pytest.fixture
def shop(world: FakeWorld) -> FakeWorld:
    add_db(world)
    return world


def test_backup_with_tags_and_pin(shop: FakeWorld, run: Cli) -> None:
    made = _backup(run, "--tag", "release=v1.4.2", "--tag", "url=http://x:1/a=b", "--pin")
    assert made["tags"] == {"release": "v1.4.2", "url": "http://x:1/a=b"}
    assert made["pinned"] is True
    stored = shop.catalog.get_snapshot(made["id"])
    assert stored is not None and stored.pinned and dict(stored.tags) == made["tags"]
    assert dict(_manifest(shop, made).tags) == made["tags"] and _manifest(shop, made).pinned


@pytest.mark.parametrize("tag", ["novalue", "bad key=x", "=v"])
def test_backup_with_a_bad_tag_exits_2_and_writes_nothing(shop: FakeWorld, run: Cli,
                                                          tag: str) -> None:
    line = failed(run("backup", "shop-db", "--tag", tag), 2)
    assert "tag" in line
    assert shop.catalog.list_snapshots() == [] and objects(shop) == {}


def test_snapshots_filter_by_tag_and_show_tags(shop: FakeWorld, run: Cli,
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    tagged = _backup(run, "--tag", "release=v1.4.2", "--pin")
    other = _backup(run, "--tag", "release=v1.4.3")
    listed = ok_json(run("snapshots", "shop-db", "--tag", "release=v1.4.2", "--json"))
    assert [s["id"] for s in listed] == [tagged["id"]]
    assert listed[0]["tags"] == {"release": "v1.4.2"}
    assert ok_json(run("snapshots", "--tag", "release=v9", "--json")) == []
    header, *rows = run("snapshots").stdout.splitlines()
    assert header.split()[-1] == "TAGS"
    by_id = {row.split()[0]: row for row in rows}
    assert by_id[tagged["id"]].rstrip().endswith("release=v1.4.2")
    assert "pinned" in by_id[tagged["id"]] and "pinned" not in by_id[other["id"]]


def test_a_long_tag_list_is_cut_in_the_table_but_whole_in_json(
        shop: FakeWorld, run: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    long = ["--tag", f"k{'x' * 30}={'v' * 30}", "--tag", "second=tag"]
    made = _backup(run, *long)
    [row] = run("snapshots").stdout.splitlines()[1:]
    assert row.rstrip().endswith("…") and "second=tag" not in row
    assert ok_json(run("snapshots", "--json"))[0]["tags"] == made["tags"]


def test_snapshots_with_a_bad_tag_filter_exits_2(run: Cli) -> None:
    assert "KEY=VALUE" in failed(run("snapshots", "--tag", "release"), 2)


def test_restore_by_tag_takes_the_newest_complete_snapshot_carrying_it(
        shop: FakeWorld, run: Cli) -> None:
    tagged = _backup(run, "--tag", "release=v1.4.2")
    _backup(run)
    restored = ok_json(run("restore", "shop-db", "--tag", "release=v1.4.2", "--name", "copy",
                           "--json"))
    assert restored["snapshot_id"] == tagged["id"]
    assert shop.docker.data_of("copy") == shop.docker.data_of("shop-db")


def test_restore_by_a_tag_nothing_carries_exits_3_naming_it(shop: FakeWorld, run: Cli) -> None:
    _backup(run, "--tag", "release=v1")
    line = failed(run("restore", "shop-db", "--tag", "release=v9", "--name", "copy"), 3)
    assert "release=v9" in line
    assert "copy" not in {c.name for c in shop.docker.containers.values()}


def test_restore_with_a_bad_tag_exits_2(shop: FakeWorld, run: Cli) -> None:
    assert "KEY=VALUE" in failed(run("restore", "shop-db", "--tag", "v1", "--name", "c1"), 2)


def test_pin_unpin_and_delete(shop: FakeWorld, run: Cli) -> None:
    made = _backup(run)
    pinned = ok_json(run("pin", made["id"][:10], "--json"))
    assert pinned["id"] == made["id"] and pinned["pinned"] is True
    assert _manifest(shop, made).pinned
    assert "unpin it first" in failed(run("delete", made["id"]), 4)
    result = run("unpin", made["id"])
    assert result.exit_code == 0 and result.stdout.strip() == f"snapshot {made['id']} unpinned"
    assert not _manifest(shop, made).pinned
    assert run("delete", made["id"]).exit_code == 0
    assert shop.catalog.get_snapshot(made["id"]) is None


def test_pin_prints_one_line(shop: FakeWorld, run: Cli) -> None:
    made = _backup(run)
    result = run("pin", made["id"])
    assert result.stdout.strip() == f"snapshot {made['id']} pinned: retention keeps it"


def test_pin_of_an_unknown_snapshot_exits_3(run: Cli) -> None:
    assert "no snapshot" in failed(run("pin", "20990101T000000Z-abcdef"), 3)
