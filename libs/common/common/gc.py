"""How a service's process uses Python's cyclic garbage collector: one place for both settings.

A request or a consumer batch allocates objects by the thousand and keeps them until it ends;
the figures behind these settings are in docs/performance.md ("GC settings").
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator

THRESHOLDS = (50_000, 20, 20)  # generation-0 allocations between collections, then the older generations' ratios


def settle_garbage_collector() -> None:
    """Once a service has started: collect less often than the default (700), and move what
    start-up built (modules, models, compiled statements, alive as long as the process) out of
    the collector's sight, so collections stop walking it again and again."""
    gc.set_threshold(*THRESHOLDS)
    gc.freeze()


_pauses = 0  # batches in progress that paused the collector (consumers of one process interleave)


@contextlib.contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic collection while a batch is applied: the batch keeps all it builds alive until
    it commits, so a collection meanwhile would walk it for nothing; reference counting frees
    it afterwards. A caller that turned the collector off itself keeps it off."""
    global _pauses
    if _pauses == 0 and not gc.isenabled():
        yield
        return
    _pauses += 1
    gc.disable()
    try:
        yield
    finally:
        _pauses -= 1
        if _pauses == 0:
            gc.enable()
