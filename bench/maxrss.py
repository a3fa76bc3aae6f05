"""Run a command and print its peak resident set size (KiB) and wall time as JSON.

``getrusage(RUSAGE_CHILDREN)`` reports the largest child this process has
waited for, so running exactly one command per invocation gives that command's
own peak, measured by the kernel rather than sampled.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time


def main() -> int:
    started = time.monotonic()
    completed = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, check=False)
    elapsed = time.monotonic() - started
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(json.dumps({"exit": completed.returncode, "seconds": elapsed, "max_rss_kib": peak}))
    return completed.returncode


if __name__ == "__main__":
    sys.exit(main())
