"""The route table of the API, and what each route needs to be called (ACCESS)."""

from __future__ import annotations

from aiohttp import web

from services.api import (
    admin_page,
    alerts,
    board,
    changes,
    deadletters,
    deadletters_page,
    deposit,
    docs,
    export,
    failures,
    failures_page,
    home,
    keys,
    legacy,
    provenance,
    schemas,
    v3,
    v5,
    views,
    webhooks,
)
from services.api.access import Access, Rules
from services.site.routes import SITE_ACCESS, setup_site


def setup_routes(app: web.Application, public_metrics: bool = False) -> None:
    """Register every route (history and provenance before the catch-all work route: DOIs
    contain slashes).

    `/metrics` is served here only with `public_metrics` (ALM_API_PUBLIC_METRICS): by default
    Prometheus scrapes it on ALM_METRICS_PORT, a listener of its own that is not published."""
    app.router.add_get("/healthz", views.healthz)
    app.router.add_get("/readyz", views.readyz)
    if public_metrics:
        app.router.add_get("/metrics", views.metrics)
    app.router.add_get("/api/v1/sources", views.list_sources)
    app.router.add_post("/api/v1/sources/{name}/{action:pause|resume}", views.control_source)
    app.router.add_get("/api/v1/sources/{name}/top", board.top_json)
    app.router.add_get("/api/v1/summary", home.summary_json)
    app.router.add_get("/api/v1/works", views.list_works)
    app.router.add_post("/api/v1/works", views.register_works)
    app.router.add_get("/api/v1/works.csv", export.works_csv)
    app.router.add_get("/api/v1/works/{id:.+}/history", views.work_history)
    app.router.add_get("/api/v1/works/{id:.+}/provenance", provenance.work_provenance)
    app.router.add_get("/api/v1/works/{id:.+}", views.get_work)
    app.router.add_post("/api/v1/deposits/ojs", deposit.ojs)
    app.router.add_get("/api/v3/articles", v3.articles)
    app.router.add_post("/api/v3/articles", legacy.overridable(v3.articles, v3.PARAMETERS))
    app.router.add_get("/api/v3/articles/{id:.+}", v3.article)
    app.router.add_get("/api/v1/alerts", alerts.list_alerts)
    app.router.add_get(admin_page.PATH, admin_page.alerts_page)
    app.router.add_get("/api/v1/failures", failures.list_failures)
    app.router.add_get(failures_page.PATH, failures_page.failures_page)
    app.router.add_get("/api/v1/deadletters", deadletters.list_deadletters)
    app.router.add_get(deadletters_page.PATH, deadletters_page.deadletters_page)
    app.router.add_get("/api/v5/articles", v5.articles)
    app.router.add_post("/api/v5/articles", legacy.overridable(v5.articles, v5.PARAMETERS))
    app.router.add_get("/api/v5/sources", v5.sources)
    app.router.add_get("/api/v5/sources/{name}", v5.source)
    app.router.add_get("/api/v1/openapi.json", docs.openapi)
    app.router.add_post("/api/v1/signup", keys.signup)
    app.router.add_get("/api/v1/keys", keys.list_keys)
    app.router.add_post("/api/v1/keys", keys.create)
    app.router.add_get("/api/v1/keys/me", keys.own_key)
    app.router.add_get("/api/v1/keys/{id}", keys.show)
    app.router.add_post("/api/v1/keys/{id}/revoke", keys.revoke)
    app.router.add_get("/api/v1/schemas", schemas.list_schemas)
    app.router.add_get("/api/v1/schemas/{name:.+}", schemas.get_schema)
    app.router.add_get("/api/v1/changes", changes.stream_changes)
    app.router.add_post("/api/v1/webhooks", webhooks.create_webhook)
    app.router.add_get("/api/v1/webhooks", webhooks.list_webhooks)
    app.router.add_get("/api/v1/webhooks/{id}", webhooks.get_webhook)
    app.router.add_delete("/api/v1/webhooks/{id}", webhooks.delete_webhook)
    app.router.add_post("/api/v1/webhooks/{id}/{action:enable|disable}", webhooks.control_webhook)
    app.router.add_get("/api/v1/webhooks/{id}/deliveries", webhooks.webhook_deliveries)
    setup_site(app)  # the pages people use (services/site)
    for resource in list(app.router.resources()):
        if isinstance(resource, web.Resource) and legacy.legacy_path(resource.canonical):
            resource.add_route("OPTIONS", legacy.preflight)  # the CORS preflight


# (method, path template) -> what the route needs (services/api/access.py). A route missing
# here needs an admin key; HEAD follows GET. Webhooks and other things a key owns: Access.KEY,
# with `access.require_owner(request, owner_key_id)` in the handler.
_ROUTES: Rules = {
    ("GET", "/healthz"): Access.PUBLIC,
    ("GET", "/readyz"): Access.PUBLIC,
    ("GET", "/metrics"): Access.PUBLIC,
    ("GET", "/api/v1/openapi.json"): Access.OPEN,
    ("GET", "/api/v1/sources"): Access.READ,
    ("POST", "/api/v1/sources/{name}/{action}"): Access.ADMIN,
    ("GET", "/api/v1/sources/{name}/top"): Access.READ,
    ("GET", "/api/v1/summary"): Access.READ,
    ("GET", "/api/v1/works"): Access.READ,
    ("POST", "/api/v1/works"): Access.ADMIN,
    ("GET", "/api/v1/works.csv"): Access.READ,
    ("GET", "/api/v1/works/{id}/history"): Access.READ,
    ("GET", "/api/v1/works/{id}"): Access.READ,
    ("GET", "/api/v5/articles"): Access.READ,
    ("GET", "/api/v5/sources"): Access.READ,
    ("GET", "/api/v5/sources/{name}"): Access.READ,
    ("POST", "/api/v1/signup"): Access.OPEN,
    ("GET", "/api/v1/keys"): Access.ADMIN,
    ("POST", "/api/v1/keys"): Access.ADMIN,
    ("GET", "/api/v1/keys/me"): Access.KEY,
    ("GET", "/api/v1/keys/{id}"): Access.ADMIN,
    ("POST", "/api/v1/keys/{id}/revoke"): Access.ADMIN,
    ("GET", "/api/v1/schemas"): Access.OPEN,
    ("GET", "/api/v1/schemas/{name}"): Access.OPEN,
    ("GET", "/api/v1/changes"): Access.READ,
    ("POST", "/api/v1/webhooks"): Access.ADMIN,
    ("GET", "/api/v1/webhooks"): Access.ADMIN,
    ("GET", "/api/v1/webhooks/{id}"): Access.ADMIN,
    ("DELETE", "/api/v1/webhooks/{id}"): Access.ADMIN,
    ("POST", "/api/v1/webhooks/{id}/{action}"): Access.ADMIN,
    ("GET", "/api/v1/webhooks/{id}/deliveries"): Access.ADMIN,
    ("GET", "/api/v1/works/{id}/provenance"): Access.READ,
    ("GET", "/api/v1/alerts"): Access.ADMIN,
    ("GET", "/admin/alerts"): Access.ADMIN,
    ("GET", "/api/v1/failures"): Access.ADMIN,
    ("GET", "/admin/failures"): Access.ADMIN,
    ("GET", "/api/v1/deadletters"): Access.ADMIN,
    ("GET", "/admin/deadletters"): Access.ADMIN,
    # the ALM-compatible APIs (v3, v5; their POST is a GET with X-HTTP-Method-Override) and
    # the OJS plugin's deposit, which registers works (an admin key, as its api_key field)
    ("GET", "/api/v3/articles"): Access.READ,
    ("POST", "/api/v3/articles"): Access.READ,
    ("GET", "/api/v3/articles/{id}"): Access.READ,
    ("POST", "/api/v5/articles"): Access.READ,
    ("POST", "/api/v1/deposits/ojs"): Access.ADMIN,
    **SITE_ACCESS,
}
ACCESS: Rules = {
    **_ROUTES,
    # CORS preflights: every ALM-compatible path (the paths `setup_routes` answers OPTIONS on)
    **{("OPTIONS", p): Access.PUBLIC for m, p in _ROUTES if m == "GET" and legacy.legacy_path(p)},
}
