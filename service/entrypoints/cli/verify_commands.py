"""``holdfast verify``: integrity checks of one snapshot or of a whole target.

``holdfast verify SNAPSHOT`` re-reads the snapshot's stored object and checks
its size, sha256, that it decrypts, decompresses and that its framing is whole,
without restoring; ``holdfast verify --target NAME`` does it for every snapshot
in a target and also reports complete snapshots without a manifest and objects
no manifest claims. Exit 0 when whole, 1 when not (the first failure on one
line on stderr), other failures by the error table (2 bad input or no
identity, 3 unknown snapshot or target). The command parses its input, makes
one backend call (the use cases here, the daemon's job with ``--server``) and
prints the report: one line per check or per problem, or JSON with ``--json``.
What to verify is chosen in :func:`verify` by one branch per kind; ``--restore``
runs a verified restore (:mod:`service.usecases.verification`) instead.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from service.entrypoints.cli.app import (
    IdentityOption,
    JsonFlag,
    app,
    backend,
    fail,
    use_identity,
)
from service.entrypoints.cli.output import print_json, table
from service.entrypoints.cli.progress import Progress

Json = dict[str, Any]
NOT_WHOLE = 1
"""The exit status of a verification that found damage."""


@app.command()
def verify(
    snapshot_id: Annotated[str | None, typer.Argument(
        metavar="SNAPSHOT", help="Snapshot id or an unambiguous prefix of one (see "
        "'holdfast snapshots'); not with --target.")] = None,
    target: Annotated[str | None, typer.Option(
        "--target", metavar="NAME", help="Verify every snapshot in storage target NAME, and "
        "report objects no manifest claims. Without an identity, encrypted objects are "
        "checked for size and sha256 only.")] = None,
    restore: Annotated[bool, typer.Option(
        "--restore", help="A verified restore: restore SNAPSHOT into a throwaway container "
        "on an internal network, compare what it holds with the figures recorded at backup "
        "time, remove it, and record the verdict on the snapshot.")] = False,
    identity: IdentityOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Check that a snapshot (or every snapshot in a target) is whole, without
    restoring: size, sha256, decryption, decompression and framing; with
    --restore, that it restores and holds what its backup recorded. Exit 0 whole
    (or passed), 1 not."""
    use_identity(identity)
    if (snapshot_id is None) == (target is None):
        fail("give a SNAPSHOT or --target NAME (one of them): 'holdfast verify ID' checks "
             "one snapshot, 'holdfast verify --target local' a whole target", 2)
    if restore:
        if snapshot_id is None:
            fail("--restore verifies one SNAPSHOT, not a whole --target", 2)
        with backend() as holdfast:
            verdict = holdfast.verify_restore(snapshot_id, Progress(f"verify {snapshot_id}"))
        _show_verdict(verdict, as_json)
        if verdict["result"] != "passed":
            fail(f"snapshot {verdict['snapshot_id']} failed its verified restore: "
                 f"{verdict['reason']}", NOT_WHOLE)
        return
    if target is not None:
        with backend() as holdfast:
            report = holdfast.verify_target(target, Progress(f"verify target {target}"))
        _show_target(report, as_json)
    else:
        assert snapshot_id is not None
        with backend() as holdfast:
            report = holdfast.verify_snapshot(snapshot_id, Progress(f"verify {snapshot_id}"))
        _show_snapshot(report, as_json)
    if not report["whole"]:
        fail(_not_whole_line(report), NOT_WHOLE)


def _show_verdict(verdict: Json, as_json: bool) -> None:
    if as_json:
        print_json(verdict)
        return
    if verdict["differences"]:
        table([[d["name"], _value(d["recorded"]), _value(d["measured"])]
               for d in verdict["differences"]], ["FIGURE", "RECORDED", "RESTORED"],
              keep=("FIGURE",))
    if verdict["result"] == "passed":
        compared = len(verdict["figures"])
        how = "estimates" if verdict["exact"] is False else "exact figures"
        typer.echo(f"snapshot {verdict['snapshot_id']} restored and matched its backup: "
                   f"{compared} figure(s) compared ({how}) in {verdict['seconds']:.1f}s"
                   if verdict["exact"] is not None else
                   f"snapshot {verdict['snapshot_id']} restored ({verdict['method']})")


def _value(value: object) -> str:
    return "-" if value is None else str(value)


def _show_snapshot(report: Json, as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    table([[c["check"], c["outcome"], c["detail"] or ""] for c in report["checks"]],
          ["CHECK", "OUTCOME", "DETAIL"])
    if report["whole"]:
        typer.echo(f"snapshot {report['snapshot_id']} is whole ({_checked(report)})")


def _checked(report: Json) -> str:
    if report["fully_checked"]:
        return "every layer checked"
    return "not every layer checked: see above"


def _show_target(report: Json, as_json: bool) -> None:
    if as_json:
        print_json(report)
        return
    rows = [[p["kind"], p["key"], p["detail"]] for p in report["problems"]]
    rows += [["partly checked", s["data_key"] or "", _unchecked_reason(s)]
             for s in report["snapshots"] if s["whole"] and not s["fully_checked"]]
    if rows:
        table(rows, ["PROBLEM", "KEY", "DETAIL"], keep=("KEY",))
    if report["whole"]:  # else the summary is the failure's line on stderr
        typer.echo(report["summary"])


def _unchecked_reason(snapshot: Json) -> str:
    reasons = [c["detail"] for c in snapshot["checks"] if c["check"] == "decrypts"]
    return f"size and sha256 only: {reasons[0] if reasons else 'not every layer read'}"


def _not_whole_line(report: Json) -> str:
    if "snapshot_id" in report:
        return f"snapshot {report['snapshot_id']} is not whole: {report['error']}"
    return f"{report['summary']} (holdfast verify --target {report['target']} --json lists them)"
