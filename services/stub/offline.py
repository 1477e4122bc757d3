"""`--offline`: the bundled stub upstream on loopback, and the settings that point every source
at it. The one place that decides how offline runs are paced: the stub is ours, so the real
upstreams' politeness rates (a few requests a second) do not apply to it."""

from __future__ import annotations

from aiohttp import web

from services.settings import FIXTURES, Settings
from services.stub import server

OFFLINE_RATE = 1000.0  # requests/s per source to the loopback stub


def offline_settings(settings: Settings, stub_root: str) -> Settings:
    """`settings` pointed at the stub at `stub_root`, every source it serves at OFFLINE_RATE
    (the real APIs' rates made the sample's refresh take ~9 s against a loopback server); an
    explicit ALM_<SOURCE>_RATE still wins."""
    rates = {name: OFFLINE_RATE for name in server.stub_names()} | dict(settings.rates)
    return settings.with_(upstream_root=stub_root, rates=rates)


async def serve_offline(settings: Settings) -> tuple[web.AppRunner, Settings]:
    """Start the stub (recorded works, and generated deterministic ones under the DOI test
    prefix 10.5555/) on a free loopback port; its runner (clean it up when done) and the
    settings that use it."""
    app = server.init_app(server.stub_names(), FIXTURES, synthetic=True)
    runner, root = await server.start(app)
    return runner, offline_settings(settings, root)
