"""SqliteStore: every storage port over one SQLite file, for the embedded mode.

The ports live one a module (works, metrics, due, raw, control) over the file's connection and
thread (connection.py, with migrations.py); the keys, hooks, checks and publishers adapters
share the same file through `SqliteFile.run`.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from services.adapters.sqlite.control import SqliteControl
from services.adapters.sqlite.due import SqliteDue
from services.adapters.sqlite.failed import SqliteFailed
from services.adapters.sqlite.metrics import SqliteMetrics
from services.adapters.sqlite.raw import SqliteRaw
from services.adapters.sqlite.search import SqliteSearch
from services.adapters.sqlite.summary import SqliteSummary
from services.adapters.sqlite.works import SqliteWorks


class SqliteStore(
    SqliteWorks,
    SqliteSearch,
    SqliteMetrics,
    SqliteSummary,
    SqliteFailed,
    SqliteRaw,
    SqliteDue,
    SqliteControl,
):
    """Works, metric state, history, events, raw responses and the due index in one file."""

    def __init__(self, path: Path | str, raw_ttl: timedelta = timedelta(days=7)) -> None:
        SqliteRaw.__init__(self, path, raw_ttl)
