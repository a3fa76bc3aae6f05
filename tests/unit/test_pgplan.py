"""backup.engines.pgplan: pieces cover every page once, post-data batches keep a
table's entries together and lose none."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backup.engines import postgres
from backup.engines.pgplan import (
    MAX_PIECES_PER_TABLE,
    MAX_TOC_IDS,
    SPLIT_MIN_PAGES,
    TID_RANGES_FROM,
    PieceSizes,
    TableInfo,
    entry_table,
    plan_pieces,
    plan_post_data,
    quote_ident,
)
from backup.engines.pgscan import TocEntry
from backup.engines.postgres import AUTO_MAX_JOBS, AUTO_PARALLEL_FROM, auto_jobs

names = st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\0"),
                min_size=1, max_size=12)
tables = st.lists(st.builds(TableInfo, schema=names, name=names,
                            pages=st.integers(0, 2_000_000),
                            columns=st.lists(names, max_size=3).map(tuple)),
                  max_size=8, unique_by=lambda t: (t.schema, t.name))


@given(tables, st.integers(1, 16), st.sampled_from([120000, 130005, TID_RANGES_FROM, 170000]))
@settings(max_examples=300)
def test_pieces_cover_each_large_table_exactly_once(candidates: list[TableInfo], jobs: int,
                                                    version: int) -> None:
    pieces = plan_pieces(candidates, jobs, version)
    for table in candidates:
        mine = [p for p in pieces if p.table == table]
        if table.pages < SPLIT_MIN_PAGES or not table.columns:
            assert mine == []
            continue
        assert 1 <= len(mine) <= MAX_PIECES_PER_TABLE
        if version < TID_RANGES_FROM:
            assert len(mine) == 1
        assert mine[0].first_page is None and mine[-1].end_page is None
        for before, after in itertools.pairwise(mine):
            assert before.end_page is not None and before.end_page == after.first_page
            assert (before.first_page or 0) < before.end_page
    sizes = [p.table.pages for p in pieces]
    assert sizes == sorted(sizes, reverse=True)


def test_a_large_table_is_cut_into_pieces_with_literal_bounds() -> None:
    table = TableInfo("public", "events", 100_000, ("id", "body"))
    pieces = plan_pieces([table], jobs=2, server_version=150000)
    assert len(pieces) == 8
    assert pieces[0].copy_out() == ('COPY (SELECT "id", "body" FROM ONLY "public"."events" '
                                    "WHERE ctid < '(12500,0)'::tid) TO STDOUT")
    assert "ctid >= '(87500,0)'::tid) TO STDOUT" in pieces[-1].copy_out()
    assert pieces[3].copy_in() == 'COPY "public"."events" ("id", "body") FROM STDIN'


def test_small_sizes_are_for_tests_only() -> None:
    table = TableInfo("s", "t", 100, ("a",))
    assert plan_pieces([table], 2, 150000) == []
    # 100 pages over 2 jobs x 4 pieces each: pieces of 13 pages, 8 of them.
    assert len(plan_pieces([table], 2, 150000, PieceSizes(8, 10))) == 8


@given(names, names)
def test_quoting_round_trips_through_the_defn_parser(schema: str, table: str) -> None:
    defn = f"CREATE INDEX ix ON {quote_ident(schema)}.{quote_ident(table)} USING btree (a);"
    entry = TocEntry(1, "INDEX", "ix", schema, defn, "")
    assert entry_table(entry) == f"{schema}.{table}"


def _entry(dump_id: int, desc: str, defn: str) -> TocEntry:
    return TocEntry(dump_id, desc, f"e{dump_id}", "public", defn, "")


def test_post_data_batches_keep_tables_together_and_run_the_rest_after() -> None:
    entries = [
        _entry(1, "CONSTRAINT", "ALTER TABLE ONLY public.big\n    ADD CONSTRAINT big_pkey "
                                "PRIMARY KEY (id);"),
        _entry(2, "INDEX", "CREATE INDEX big_x ON public.big USING btree (x);"),
        _entry(3, "INDEX", 'CREATE UNIQUE INDEX s1 ON ONLY public."Small One" USING btree (a);'),
        _entry(4, "FK CONSTRAINT", "ALTER TABLE ONLY public.small2\n    ADD CONSTRAINT fk "
                                   "FOREIGN KEY (b) REFERENCES public.big(id);"),
        _entry(5, "TRIGGER", "CREATE TRIGGER t BEFORE INSERT ON public.big ...;"),
        _entry(6, "INDEX", "CREATE INDEX s2 ON public.small2 USING btree (b);"),
    ]
    plan = plan_post_data(entries, {"public.big": 50_000}, jobs=2)
    assert plan.parallel[0] == [1, 2]
    assert sorted(map(sorted, plan.parallel[1:])) == [[3], [6]]
    assert plan.after == [4, 5]


@given(st.lists(st.tuples(st.sampled_from(["INDEX", "CONSTRAINT", "TRIGGER", "COMMENT"]),
                          st.integers(0, 5), st.integers(0, 3000)), max_size=60),
       st.integers(1, 8))
def test_no_post_data_entry_is_lost_or_doubled(spec: list[tuple[str, int, int]],
                                              jobs: int) -> None:
    entries = []
    for dump_id, (desc, table, _) in enumerate(spec, start=1):
        defn = (f"CREATE INDEX i{dump_id} ON public.t{table} USING btree (a);" if desc == "INDEX"
                else f"ALTER TABLE ONLY public.t{table}\n    ADD CONSTRAINT c{dump_id} CHECK (a);"
                if desc == "CONSTRAINT" else "COMMENT ON x;")
        entries.append(_entry(dump_id, desc, defn))
    pages = {f"public.t{t}": pages for _, t, pages in spec}
    plan = plan_post_data(entries, pages, jobs)
    planned = [i for batch in plan.parallel for i in batch] + plan.after
    assert sorted(planned) == list(range(1, len(spec) + 1))
    assert all(len(batch) <= MAX_TOC_IDS for batch in plan.parallel)
    for batch in plan.parallel:  # a table's entries are never in two batches
        tables = {entry_table(entries[i - 1]) for i in batch}
        others = {entry_table(entries[i - 1]) for b in plan.parallel if b is not batch
                  for i in b}
        assert not tables & others


@given(st.integers(1, 256), st.integers(0, 2**50), st.booleans())
def test_the_default_degree_is_one_unless_on_and_a_gigabyte_then_the_cpus_up_to_four(
        cpus: int, size: int, on: bool) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(postgres, "AUTO_PARALLEL", on)
        jobs = auto_jobs(cpus, size)
    assert jobs == (min(cpus, AUTO_MAX_JOBS) if on and size >= AUTO_PARALLEL_FROM else 1)
