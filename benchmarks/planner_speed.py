#!/usr/bin/env python
"""How long the memory planner takes on random graphs of 50 to 400 buffers (the planner tests'
``random_graph``: in-place records with one window, and with a reverse window too), written to
benchmarks/RESULTS.md's "planner-speed" section. Timings belong here, not in tests (shared, noisy
machines): the tests check the same plans for correctness only.

    python benchmarks/planner_speed.py --out benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

from sections import write_section  # noqa: E402
from test_planner import random_graph  # noqa: E402

from micronets.compiler.planner import plan  # noqa: E402

TAG = "planner-speed"


def timed(bufs, ovs, repeats: int) -> float:
    """Median seconds of ``repeats`` plan() calls."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        plan(bufs, ovs)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=None, help="RESULTS.md to write the section into (default: print it)")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    rows = []
    for n in (50, 100, 200, 400):
        bufs, ovs = random_graph(7, n=n, lam=0.2)
        rbufs, rovs = random_graph(7, n=n, lam=0.2, reverse=0.5)
        rows.append(f"| {n} | {timed(bufs, ovs, args.repeats) * 1000:.0f} | {timed(rbufs, rovs, args.repeats) * 1000:.0f} |")
    section = "\n".join([
        f"<!-- {TAG}: begin -->",
        "## Memory planner speed (benchmarks/planner_speed.py)",
        "",
        f"Median of {args.repeats} `plan()` calls on the planner tests' random graphs (seed 7, lam 0.2; "
        f"\"two windows\": half the in-place records with a reverse window too), {platform.python_implementation()} "
        f"{platform.python_version()} on {os.cpu_count()} cores, a shared machine.",
        "",
        "| buffers | ms | ms, two windows |",
        "|--:|--:|--:|",
        *rows,
        f"<!-- {TAG}: end -->",
    ])
    if args.out:
        write_section(args.out, section, TAG)
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
