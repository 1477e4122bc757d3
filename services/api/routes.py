"""The route table of the API."""

from __future__ import annotations

from aiohttp import web

from services.api import deposit, docs, legacy, v3, v5, views


def setup_routes(app: web.Application, public_metrics: bool = False) -> None:
    """Register every route (history before the catch-all work route: DOIs contain slashes).

    `/metrics` is served here only with `public_metrics` (ALM_API_PUBLIC_METRICS): by default
    Prometheus scrapes it on ALM_METRICS_PORT, a listener of its own that is not published."""
    app.router.add_get("/healthz", views.healthz)
    app.router.add_get("/readyz", views.readyz)
    if public_metrics:
        app.router.add_get("/metrics", views.metrics)
    app.router.add_get("/api/v1/sources", views.list_sources)
    app.router.add_post("/api/v1/sources/{name}/{action:pause|resume}", views.control_source)
    app.router.add_get("/api/v1/works", views.list_works)
    app.router.add_post("/api/v1/works", views.register_works)
    app.router.add_get("/api/v1/works/{id:.+}/history", views.work_history)
    app.router.add_get("/api/v1/works/{id:.+}", views.get_work)
    app.router.add_post("/api/v1/deposits/ojs", deposit.ojs)
    app.router.add_get("/api/v3/articles", v3.articles)
    app.router.add_post("/api/v3/articles", legacy.overridable(v3.articles, v3.PARAMETERS))
    app.router.add_get("/api/v3/articles/{id:.+}", v3.article)
    app.router.add_get("/api/v5/articles", v5.articles)
    app.router.add_post("/api/v5/articles", legacy.overridable(v5.articles, v5.PARAMETERS))
    app.router.add_get("/api/v5/sources", v5.sources)
    app.router.add_get("/api/v5/sources/{name}", v5.source)
    app.router.add_get("/api/v1/openapi.json", docs.openapi)
    for resource in list(app.router.resources()):
        if isinstance(resource, web.Resource) and legacy.legacy_path(resource.canonical):
            resource.add_route("OPTIONS", legacy.preflight)  # the CORS preflight
