"""`insert_rows`: many rows in one statement, exactly as `executemany` would write them."""

from __future__ import annotations

import sqlite3

from services.adapters.sqlite.bulk import insert_rows

TEXTS = [
    "plain",
    "",
    'quote " backslash \\ slash / \\u0000 as text',
    "\n\t\r\x08\x0c\x01\x1f\x7f",
    "é ß 中文 \u2028 \ufeff 😀 \U0010ffff",
    "x" * 5000,
]


def _table() -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE t (k TEXT PRIMARY KEY, a TEXT, b TEXT)")
    return conn


def test_rows_are_written_in_order_exactly_as_executemany_writes_them() -> None:
    rows = [(f"k{i}", text, None if i % 2 else text) for i, text in enumerate(TEXTS)]
    bulk, each = _table(), _table()
    insert_rows(bulk, "INSERT INTO t (k, a, b)", 3, rows)
    each.executemany("INSERT INTO t (k, a, b) VALUES (?, ?, ?)", rows)
    read = "SELECT rowid, k, a, b, typeof(a), typeof(b) FROM t ORDER BY rowid"
    assert bulk.execute(read).fetchall() == each.execute(read).fetchall()
    assert [tuple(r[1:4]) for r in bulk.execute(read)] == rows


def test_a_nul_character_is_kept_too() -> None:
    conn = _table()
    rows = [("k1", "before\x00after", None), ("k2", "b", "c")]
    insert_rows(conn, "INSERT INTO t (k, a, b)", 3, rows)
    assert conn.execute("SELECT k, a, b FROM t ORDER BY rowid").fetchall() == rows


def test_a_conflict_clause_applies_to_every_row() -> None:
    conn = _table()
    insert_rows(conn, "INSERT INTO t (k, a, b)", 3, [("k", "old", "x")])
    upsert = "ON CONFLICT(k) DO UPDATE SET a=excluded.a"
    insert_rows(conn, "INSERT INTO t (k, a, b)", 3, [("k", "new", "y"), ("j", "j", None)], upsert)
    insert_rows(conn, "INSERT INTO t (k, a, b)", 3, [])
    assert conn.execute("SELECT k, a, b FROM t ORDER BY k").fetchall() == [
        ("j", "j", None),
        ("k", "new", "x"),
    ]


def test_shared_and_repeated_columns_are_written_as_executemany_writes_them() -> None:
    """Columns with one value in every row, or equal to another column, are sent once but
    written to every row alike."""
    shapes = [
        [(f"k{i}", f"k{i}", "same") for i in range(5)],  # a repeated column, a shared one
        [(f"k{i}", None, None) for i in range(3)],  # one column varies
        [("k", "a", None)],  # one row
        [(t, t, t) for t in TEXTS],  # every column the same as the first
        [(f"k{i}", "x\x00y", f"k{i}") for i in range(3)],  # a shared value with a NUL
    ]
    for rows in shapes:
        bulk, each = _table(), _table()
        insert_rows(bulk, "INSERT INTO t (k, a, b)", 3, rows)
        each.executemany("INSERT INTO t (k, a, b) VALUES (?, ?, ?)", rows)
        read = "SELECT rowid, k, a, b, typeof(a), typeof(b) FROM t ORDER BY rowid"
        assert bulk.execute(read).fetchall() == each.execute(read).fetchall()


def test_rows_alike_are_each_inserted() -> None:
    """Rows whose every value is the same in all of them are inserted as many times."""
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE q (a TEXT, b TEXT)")
    insert_rows(conn, "INSERT INTO q (a, b)", 2, [("x", None)] * 4)
    assert conn.execute("SELECT a, b FROM q").fetchall() == [("x", None)] * 4


def test_integers_keep_their_type() -> None:
    """Integer values, shared or not, are written as integers, as `executemany` writes them."""
    rows = [("k1", 0, 1), ("k2", 0, 2), ("k3", 0, -(2**62))]
    bulk, each = sqlite3.connect(":memory:"), sqlite3.connect(":memory:")
    for conn in (bulk, each):
        conn.execute("CREATE TABLE n (k TEXT, a INTEGER, b INTEGER)")
    insert_rows(bulk, "INSERT INTO n (k, a, b)", 3, rows)
    each.executemany("INSERT INTO n (k, a, b) VALUES (?, ?, ?)", rows)
    read = "SELECT k, a, b, typeof(a), typeof(b) FROM n ORDER BY rowid"
    assert bulk.execute(read).fetchall() == each.execute(read).fetchall()
