"""``python -m pykka_raft.kv``: the same as the ``pykka-raft-kv`` command."""

from pykka_raft.kv.cli import main

main()
