"""The one place that wires adapters to services: `make_bus`, `make_store`, `make_pipeline`,
one builder a service, the API's context.

`main()` of every command and the tests call these; nothing connects at import time.
- adapters.py: the store and bus `ALM_STORE`/`ALM_BUS` name, and the stores beside them;
- pipeline.py: the scheduler, fetchers, aggregator and checks over a store and a bus;
- api.py: what the API is handed;
- clock.py: the wall clock.
"""

from services.bootstrap.adapters import (
    check_settings,
    make_bus,
    make_call_archive,
    make_checks,
    make_feed,
    make_hook_store,
    make_key_store,
    make_publishers,
    make_store,
)
from services.bootstrap.api import api_context, make_catalog
from services.bootstrap.clock import utc_now
from services.bootstrap.pipeline import (
    AggregatorParts,
    Pipeline,
    _backlog,
    catalog,
    make_aggregator,
    make_aggregator_parts,
    make_caller,
    make_checker,
    make_fetchers,
    make_pipeline,
    make_scheduler,
    make_scheduling,
    selected_sources,
)

__all__ = [
    "AggregatorParts",
    "Pipeline",
    "_backlog",
    "api_context",
    "catalog",
    "check_settings",
    "make_aggregator",
    "make_aggregator_parts",
    "make_bus",
    "make_call_archive",
    "make_caller",
    "make_catalog",
    "make_checker",
    "make_checks",
    "make_feed",
    "make_fetchers",
    "make_hook_store",
    "make_key_store",
    "make_pipeline",
    "make_publishers",
    "make_scheduler",
    "make_scheduling",
    "make_store",
    "selected_sources",
    "utc_now",
]
