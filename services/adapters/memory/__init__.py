"""The in-process adapters of the embedded mode: the bus (services/adapters/memory/bus.py) and
the change feed the API's SSE stream reads from it (feed.py)."""

from services.adapters.memory.bus import MemoryBus

__all__ = ["MemoryBus"]
