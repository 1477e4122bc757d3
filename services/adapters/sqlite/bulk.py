"""Many rows in one SQLite statement: the rows as one JSON array that `json_each` reads.

`executemany` binds each row's values and steps the statement once a row, taking the
interpreter's lock back after every row; with the rows as one JSON text, SQLite inserts all of
them in one step, without the interpreter (another thread runs Python meanwhile: registration
checks the next chunk while this one is written). SQLite's JSON functions give back every
string exactly but one holding a NUL character (cut there), so rows with one go the
`executemany` way.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

import orjson

Row = Sequence[str | None]


def insert_rows(
    conn: sqlite3.Connection, head: str, width: int, rows: Sequence[Row], tail: str = ""
) -> None:
    """`conn.executemany(f"{head} VALUES (?, ... width) {tail}", rows)` in one statement (rows
    of text or NULL values, inserted in their order). `head` is `INSERT ... INTO table
    (columns)`, `tail` an `ON CONFLICT` clause or empty."""
    if not rows:
        return
    payload = orjson.dumps(rows)
    if b"\\u0000" in payload:
        marks = ", ".join("?" * width)
        conn.executemany(f"{head} VALUES ({marks}) {tail}", rows)
        return
    values = ", ".join(f"value ->> {i}" for i in range(width))
    conn.execute(f"{head} SELECT {values} FROM json_each(?) WHERE true {tail}", (payload.decode(),))
