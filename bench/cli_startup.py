"""How long ``holdfast`` takes before it answers: ``--help``, ``--version`` and
``snapshots`` on a local SQLite catalog, beside the interpreter's own start-up.

Every run is a fresh interpreter (``python -m service.entrypoints.cli ...``),
started and waited for with ``os.wait4`` so the wall time and the kernel's peak
RSS are that process's own. The commands are run round-robin, ``--runs`` times
each after ``--warmup`` rounds, so a load that comes and goes (other work on
the machine) spreads over all of them; the medians are what to compare.

Baselines: ``python -c pass`` (the floor: the interpreter and site),
``python -c "import typer"`` (the CLI framework alone), and typer with
pydantic-settings and ``sqlalchemy.orm`` (what a command that reads the catalog
cannot do without). With ``--base REV``
the same commands also run against another commit, checked out with
``git worktree add`` into a temporary directory (removed again) and put first on
``PYTHONPATH``; each side has its own data directory, since their catalog
schemas may differ. Goals: ``--help`` and ``--version`` under 150 ms,
``snapshots`` under 400 ms.

    python bench/cli_startup.py --runs 20 --base 0670b9a

Docker is not needed: ``DOCKER_HOST`` points nowhere, and no command here talks
to the engine.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOALS_MS = {"--help": 150.0, "--version": 150.0, "snapshots": 400.0}


@dataclass
class Case:
    side: str
    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: Path = ROOT
    seconds: list[float] = field(default_factory=list)
    rss_kib: list[int] = field(default_factory=list)
    exits: set[int] = field(default_factory=set)


def run_once(case: Case) -> None:
    started = time.perf_counter()
    proc = subprocess.Popen(case.argv, env=case.env, cwd=case.cwd, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    case.seconds.append(time.perf_counter() - started)
    case.rss_kib.append(usage.ru_maxrss)
    case.exits.add(os.waitstatus_to_exitcode(status))
    proc.returncode = os.waitstatus_to_exitcode(status)  # already reaped


def environment(data_dir: Path, pythonpath: str | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")}
    env.update(HOLDFAST_DATA_DIR=str(data_dir), DOCKER_HOST="unix:///nonexistent",
               HOLDFAST_LOG_LEVEL="WARNING")
    env.pop("PYTHONPATH", None)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return env


def holdfast_cases(side: str, data_dir: Path, tree: Path) -> list[Case]:
    """The measured commands for the code in ``tree``: first on ``PYTHONPATH``,
    and the working directory, which ``python -m`` puts before it."""
    env = environment(data_dir, str(tree))
    cli = [sys.executable, "-m", "service.entrypoints.cli"]
    # The first snapshots creates and migrates the catalog; what is measured is
    # every later command's start.
    subprocess.run([*cli, "snapshots"], env=env, cwd=tree, check=False, capture_output=True)
    return [Case(side, name, [*cli, *name.split()], env, tree)
            for name in ("--help", "--version", "snapshots")]


def checkout(rev: str, into: Path) -> Path:
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(into), rev],
                   check=True, capture_output=True)
    return into


def report(cases: list[Case]) -> None:
    floor = statistics.median(cases[0].seconds) * 1000
    print(f"{'side':<8} {'command':<22} {'median ms':>10} {'min ms':>8} {'max ms':>8} "
          f"{'- pass':>8} {'RSS MiB':>8}  goal")
    for case in cases:
        median = statistics.median(case.seconds) * 1000
        goal = GOALS_MS.get(case.name) if case.side != "baseline" else None
        verdict = "" if goal is None else (f"< {goal:.0f} ms: "
                                           + ("met" if median < goal else "NOT met"))
        exits = "" if case.exits <= {0} else f"  (exit {sorted(case.exits)})"
        print(f"{case.side:<8} {case.name:<22} {median:>10.0f} {min(case.seconds) * 1000:>8.0f} "
              f"{max(case.seconds) * 1000:>8.0f} {median - floor:>8.0f} "
              f"{statistics.median(case.rss_kib) / 1024:>8.1f}  {verdict}{exits}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20, help="runs of each command")
    parser.add_argument("--warmup", type=int, default=2, help="unmeasured rounds first")
    parser.add_argument("--base", help="also measure this commit (a git revision)")
    args = parser.parse_args()
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=False).stdout.strip()
    load = os.getloadavg()
    print(f"holdfast CLI start-up, {args.runs} runs each; HEAD {head}"
          f"{' (plus uncommitted changes)' if _dirty() else ''}; python {sys.version.split()[0]}; "
          f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; {os.cpu_count()} CPUs")
    with tempfile.TemporaryDirectory(prefix="holdfast-bench-cli-") as tmp:
        work = Path(tmp)
        env = environment(work / "none", None)
        cases = [Case("baseline", "python -c pass", [sys.executable, "-c", "pass"], env),
                 Case("baseline", "python -c import typer",
                      [sys.executable, "-c", "import typer"], env),
                 # What any command reading the catalog must load: the CLI, the
                 # settings and SQLAlchemy's ORM (the catalog's repository).
                 Case("baseline", "import typer+settings+orm",
                      [sys.executable, "-c", "import typer, pydantic_settings, sqlalchemy.orm"],
                      env)]
        cases += holdfast_cases("now", work / "now", ROOT)
        base_tree = None
        try:
            if args.base:
                base_tree = checkout(args.base, work / "base")
                cases += holdfast_cases(args.base[:8], work / "base-data", base_tree)
            for round_ in range(args.warmup + args.runs):
                for case in cases:
                    run_once(case)
                    if round_ < args.warmup:
                        case.seconds.clear()
                        case.rss_kib.clear()
            report(cases)
        finally:
            if base_tree is not None:
                subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                                str(base_tree)], check=False, capture_output=True)
    return 0


def _dirty() -> bool:
    out = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=no"],
                         capture_output=True, text=True, check=False).stdout
    return bool(out.strip())


if __name__ == "__main__":
    sys.exit(main())
