"""``python -m bench.tcp``: the TCP comparison of ``make bench`` alone.

pykka_raft and PySyncObj, one process per node over loopback TCP, one client process
(see :mod:`bench.cluster`). Other arguments are those of ``python -m bench``.

    python -m bench.tcp [--quick] [--repeats N]
    python -m bench.tcp --profile [SETTING]   # default raft3_mem: cProfile of every node
"""

from __future__ import annotations

import sys

from bench.__main__ import main as bench_main


def main(argv: list[str]) -> int:
    if "--profile" in argv:
        rest = [a for a in argv if a != "--profile"]
        setting = next((a for a in rest if not a.startswith("-")), "raft3_mem")
        return bench_main(["--profile", setting, *[a for a in rest if a.startswith("-")]])
    return bench_main(["--only", "tcp", *argv])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
