"""Many rows in one SQLite statement: the rows as one JSON array that `json_each` reads.

`executemany` binds each row's values and steps the statement once a row, taking the
interpreter's lock back after every row; with the rows as one JSON text, SQLite inserts all of
them in one step, without the interpreter (another thread runs Python meanwhile: registration
checks the next chunk while this one is written). SQLite's JSON functions give back every
string exactly but one holding a NUL character (cut there), so rows with one go the
`executemany` way.

Only the columns that differ between rows travel in the JSON: `value ->> i` parses the row's
JSON text again for every column (SQLite 3.40 keeps no parsed form), so a column with one
value in every row (a NULL the whole chunk leaves empty, a time the whole write shares) is
bound once, and a column equal to another one (a work id that is its DOI) is read once. With
one column left, the array holds the values themselves, which `value` gives without parsing.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from operator import itemgetter

import orjson

Row = Sequence[str | int | None]


def insert_rows(
    conn: sqlite3.Connection, head: str, width: int, rows: Sequence[Row], tail: str = ""
) -> None:
    """`conn.executemany(f"{head} VALUES (?, ... width) {tail}", rows)` in one statement (rows
    of text, integer or NULL values, inserted in their order). `head` is `INSERT ... INTO table
    (columns)`, `tail` an `ON CONFLICT` clause or empty."""
    if not rows:
        return
    # By column, through `itemgetter` (`zip(*rows)` makes an iterator a row: garbage to collect).
    columns = [tuple(map(itemgetter(i), rows)) for i in range(width)]
    values: list[str] = []  # the expression of each column
    sent: list[tuple[str | int | None, ...]] = []  # the columns in the JSON
    bound: list[str | int | None] = []  # the values of the `?` in `values`, in order
    for column in columns:
        if column.count(column[0]) == len(column):  # one value in every row
            values.append("?")
            bound.append(column[0])
        elif column in sent:
            values.append(f"#{sent.index(column)}")
        else:
            values.append(f"#{len(sent)}")
            sent.append(column)
    if not sent:  # every row alike: as many rows as given, from a JSON array of that length
        payload = orjson.dumps([None] * len(rows))
    else:
        payload = orjson.dumps(sent[0] if len(sent) == 1 else list(zip(*sent, strict=True)))
    if b"\\u0000" in payload:  # (a bound value is bound as it is)
        marks = ", ".join("?" * width)
        conn.executemany(f"{head} VALUES ({marks}) {tail}", rows)
        return
    each = "value" if len(sent) == 1 else "value ->> {}"
    select = ", ".join(each.format(v[1:]) if v.startswith("#") else v for v in values)
    conn.execute(
        f"{head} SELECT {select} FROM json_each(?) WHERE true {tail}",
        (*bound, payload.decode()),
    )
