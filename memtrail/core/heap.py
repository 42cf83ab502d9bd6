"""The stream worker's garbage-collector policy, shared with the benchmarks that measure it."""

from __future__ import annotations

import gc

#: generation thresholds: young objects are collected after 200k allocations (not 700)
GC_THRESHOLDS = (200_000, 50, 1000)


def settle_heap() -> None:
    """Take what exists now (the compiled pattern library, the app) out of the collector's
    sight and collect young objects far less often: every batch allocates thousands of
    short-lived dicts without cycles, and the default thresholds made decoding 2-4x slower
    (docs/stream.md)."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
