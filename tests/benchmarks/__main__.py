"""`make bench`: every benchmark, each printing its figures and ratios.

Run one with ``python -m tests.benchmarks dispatch``; TONEGRAPH_BENCH_QUICK=1 shortens
them (for a smoke run, not for the figures in docs/benchmarks.md).
"""

from __future__ import annotations

import importlib
import platform
import sys

from .common import cpu_name

BENCHES = ["dispatch", "clock", "audio", "osc", "reload", "live", "batch", "gan", "render", "library"]


def main(argv: list[str]) -> int:
    names = argv or BENCHES
    print(f"tonegraph benchmarks on {cpu_name()}, "
          f"Python {platform.python_version()}")
    for name in names:
        if name not in BENCHES:
            print(f"unknown benchmark '{name}'; choose from {', '.join(BENCHES)}", file=sys.stderr)
            return 2
        importlib.import_module(f"tests.benchmarks.bench_{name}").run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
