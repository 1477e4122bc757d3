"""Settings shared by every test layer: property tests keep no example database in the tree and
have no per-example deadline (the machine is shared; speed is measured by bench/, not here)."""

from __future__ import annotations

import pytest
from hypothesis import settings

from services.adapters.failures import register_adapter_failures

settings.register_profile("alm", database=None, deadline=None, print_blob=True)
settings.load_profile("alm")


@pytest.fixture(scope="session", autouse=True)
def adapter_failures() -> None:
    """The adapters' exception types registered (services/core/failures.py), as bootstrap does
    in every entry point, for tests that build adapters or raise their errors themselves."""
    register_adapter_failures()
