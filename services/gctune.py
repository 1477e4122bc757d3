"""Cyclic garbage-collector settings for the long-running processes.

CPython frees most objects by reference counting; the cyclic collector exists for reference
cycles. It runs a generation-0 pass every 700 net allocations of container objects and, every
so often, walks every tracked object the process holds. A service that folds thousands of
observations a second allocates millions of short-lived tuples, dicts and rows, so with the
default thresholds the collector ran constantly and kept re-walking the long-lived heap (faust,
the Cassandra driver's metadata, compiled schemas): measured on the aggregator in
bench/distributed.py, 317 -> 201 us of CPU per refresh (the fetchers gain less).

So, as large Python services do (Instagram's `gc.freeze`), `tune` moves everything alive after
start-up out of the collector's reach and raises the generation-0 threshold to 50,000. Cycles
are still collected, only less often. The older generations must still be collected too:
garbage cycles that were alive at a young collection move to the old generation and are freed
only by a full collection. (The largest were the Cassandra driver's: every request's
ResponseFuture, its timeout Timer and its callbacks refer to each other, and the future holds
the rows; services/adapters/cassandra/window.py now breaks those cycles once a request is
done, so its rows are freed by reference counting, not left for a full collection.) Thresholds of
50,000 / 50 / 1,000 (this module's first default) put 2.5 billion allocations between full
collections: the distributed aggregator's memory grew by 3 MB a minute in bench/soak.py. With
50,000 / 20 / 10 a full collection may run every 10 million allocations, and CPython runs it
only once the objects that survived since the last one are a quarter of the long-lived heap,
so garbage in the old generation stays within that quarter. `ALM_GC_THRESHOLD` sets the three
thresholds ("50000,20,10", the default) or `python` for CPython's own (700,10,10, nothing
frozen).
"""

from __future__ import annotations

import gc

DEFAULT = (50_000, 20, 10)


def thresholds(setting: str | None) -> tuple[int, int, int] | None:
    """The thresholds `setting` asks for; None for CPython's defaults; ValueError if malformed."""
    if setting is None or not setting.strip():
        return DEFAULT
    if setting.strip().lower() == "python":
        return None
    parts = [p.strip() for p in setting.split(",")]
    if len(parts) != 3 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(
            f"ALM_GC_THRESHOLD must be three positive integers like '50000,20,10', "
            f"or 'python'; got {setting!r}"
        )
    return int(parts[0]), int(parts[1]), int(parts[2])


def tune(wanted: tuple[int, int, int] | None) -> None:
    """Freeze what start-up made and set the thresholds (None: leave CPython's)."""
    if wanted is None:
        return
    gc.collect()  # start-up garbage is freed, not frozen
    gc.freeze()
    gc.set_threshold(*wanted)
