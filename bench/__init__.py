"""Benchmarks of pykka_raft against the Pykka substrate and PySyncObj (make bench)."""
