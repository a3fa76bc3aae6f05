"""Benchmark: what age encryption costs a ``holdfast backup`` of a Postgres.

It starts a Postgres on the internal bench network, loads about ``--size-mb``
(default 500) of random hex rows (``bench/dump_throughput.py``'s loader), then
runs, alternately ``--rounds`` times (default 3) in the same run so that neither
pays alone for a cold cache or a noisy neighbour:

- ``holdfast backup`` to a plain target;
- ``holdfast backup`` with ``HOLDFAST_AGE_RECIPIENTS`` set (dump -> zstd -> age);
- the hand baseline ``docker exec pg_dump ... | zstd -3 > file`` and, if the ``age``
  CLI is installed, ``... | zstd -3 | age -r R > file``.

It prints the best of each path: seconds, MiB/s of data, stored size and the
kernel-measured peak RSS of the Holdfast process (``bench/maxrss.py``), then the
encrypted/plain ratios. The container and its volume are removed, also on Ctrl-C.
Needs the test harness and the ``zstd`` CLI:

    bash tests/harness/ensure_docker.sh && bash tests/harness/build_images.sh
    python bench/encrypted_backup.py [--size-mb 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

import docker
from dump_throughput import BASE_IMAGE, MIB, NETWORK, baseline, holdfast_backup, start_postgres

from backup.encryption import new_identity


def age_baseline(argv: list[str], recipient: str, out: Path) -> dict[str, float]:
    """``argv | zstd -3 | age -r recipient > out``: seconds and stored bytes."""
    started = time.monotonic()
    with open(out, "wb") as sink:
        dump = subprocess.Popen(argv, stdout=subprocess.PIPE)
        compress = subprocess.Popen(["zstd", "-3", "-q", "-c"], stdin=dump.stdout,
                                    stdout=subprocess.PIPE)
        encrypt = subprocess.run(["age", "-r", recipient], stdin=compress.stdout, stdout=sink,
                                 check=False)
        assert dump.stdout is not None and compress.stdout is not None
        dump.stdout.close()
        compress.stdout.close()
        if dump.wait() != 0 or compress.wait() != 0 or encrypt.returncode != 0:
            raise SystemExit("baseline pg_dump | zstd | age failed")
    seconds = time.monotonic() - started
    size = out.stat().st_size
    out.unlink()
    return {"seconds": seconds, "bytes": size}


def best(runs: list[Any]) -> Any:
    return min(runs, key=lambda run: run[0]["seconds"] if isinstance(run, tuple)
               else run["seconds"])


def line(label: str, seconds: float, stored: int, data: int, rss_kib: int | None = None) -> None:
    rss = f"  peak RSS {rss_kib / 1024:6.1f} MiB" if rss_kib is not None else ""
    print(f"  {label:<26}: {seconds:7.1f} s  {stored / MIB:8.1f} MiB stored  "
          f"{data / MIB / seconds:7.1f} MiB/s{rss}")


def report(data: int, plain: Any, encrypted: Any, bases: dict[str, dict[str, float]]) -> None:
    (plain_run, plain_snap), (enc_run, enc_snap) = plain, encrypted
    print(f"\n== postgres: {data / MIB:,.0f} MiB of data (raw dump "
          f"{plain_snap['raw_bytes'] / MIB:,.0f} MiB)")
    line("holdfast backup (plain)", plain_run["seconds"], plain_snap["size_bytes"], data,
         plain_run["max_rss_kib"])
    line("holdfast backup (age)", enc_run["seconds"], enc_snap["size_bytes"], data,
         enc_run["max_rss_kib"])
    for label, base in bases.items():
        line(label, base["seconds"], int(base["bytes"]), data)
    print(f"  ratio encrypted/plain: time {enc_run['seconds'] / plain_run['seconds']:.2f}x, "
          f"size {enc_snap['size_bytes'] / plain_snap['size_bytes']:.4f}x, peak RSS "
          f"{enc_run['max_rss_kib'] / plain_run['max_rss_kib']:.2f}x "
          f"({(enc_run['max_rss_kib'] - plain_run['max_rss_kib']) / 1024:+.1f} MiB)")
    if "baseline zstd | age" in bases:
        hand = bases["baseline zstd | age"]["seconds"]
        print(f"  ratio holdfast (age)/hand baseline (age): time "
              f"{enc_run['seconds'] / hand:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3,
                        help="alternating runs of each path; the best of each is reported")
    options = parser.parse_args()
    if shutil.which("zstd") is None:
        raise SystemExit("the baseline needs the zstd CLI: apt-get install -y zstd")
    has_age = shutil.which("age") is not None
    if not has_age:
        print("[the age CLI is not installed: no age hand baseline (apt-get install -y age)]")
    client = docker.from_env(timeout=600)
    if not client.networks.list(names=[NETWORK]):
        client.networks.create(NETWORK, internal=True, labels={"holdfast.bench": "1"})
    scratch = Path(tempfile.mkdtemp(prefix="holdfast-bench-"))
    _, recipient = new_identity()  # only the public half is needed to back up
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("HOLDFAST_")},
           "HOLDFAST_DATA_DIR": str(scratch / "data"), "HOLDFAST_HELPER_IMAGE": BASE_IMAGE}
    encrypted_env = {**env, "HOLDFAST_AGE_RECIPIENTS": recipient}
    name = f"holdfast-bench-age-{secrets.token_hex(3)}"
    bench = None
    try:
        started = time.monotonic()
        bench = start_postgres(client, name, options.size_mb)
        data = bench.measure()
        print(f"[postgres: loaded {data / MIB:,.0f} MiB in {time.monotonic() - started:.0f} s]",
              flush=True)
        plain, encrypted = [], []
        bases: dict[str, list[dict[str, float]]] = {"baseline zstd": [],
                                                    "baseline zstd | age": []}
        for round_number in range(options.rounds):
            plain.append(holdfast_backup(name, env))
            run, snap = holdfast_backup(name, encrypted_env)
            if not snap["data_key"].endswith(".age"):
                raise SystemExit(f"snapshot {snap['id']} is not encrypted: {snap}")
            encrypted.append((run, snap))
            bases["baseline zstd"].append(baseline(bench.baseline_argv, scratch / "b.zst"))
            if has_age:
                bases["baseline zstd | age"].append(
                    age_baseline(bench.baseline_argv, recipient, scratch / "b.zst.age"))
            print(f"[round {round_number + 1}: plain {plain[-1][0]['seconds']:.1f} s, "
                  f"age {run['seconds']:.1f} s]", flush=True)
        report(data, best(plain), best(encrypted),
               {label: best(runs) for label, runs in bases.items() if runs})
    finally:
        if bench is not None:
            bench.container.remove(force=True)
        for volume in client.volumes.list(filters={"name": name}):
            volume.remove(force=True)
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
