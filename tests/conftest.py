"""Settings shared by every test layer: property tests keep no example database in the tree and
have no per-example deadline (the machine is shared; speed is measured by bench/, not here)."""

from __future__ import annotations

from hypothesis import settings

settings.register_profile("alm", database=None, deadline=None, print_blob=True)
settings.load_profile("alm")
