"""One stub per source, `<source>.py`, found by the source's name (services/stub/server.py)."""
