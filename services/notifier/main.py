"""`alm notifier`: the webhook deliveries of the distributed mode, one process (one replica)."""

from __future__ import annotations

import asyncio

from services.bootstrap import make_bus, make_catalog, make_hook_store, make_store
from services.embedded import keep_stepping
from services.notifier.sender import Sender
from services.notifier.service import Notifier
from services.settings import Settings
from services.shutdown import close_all


async def run(settings: Settings, stop: asyncio.Event) -> int:
    """Deliver changes to webhooks until `stop` is set; then the batch in progress gets
    shutdown.DRAIN_SECONDS to finish and commit (the step loop's drain), and the bus and
    store close within shutdown.CLOSE_SECONDS."""
    store, bus = make_store(settings), make_bus(settings)
    try:
        async with sender_for(settings) as sender:
            notifier = Notifier(
                bus, make_hook_store(store), store, sender, settings.notify, make_catalog()
            )
            await asyncio.gather(
                keep_stepping("notifier", notifier.step, stop),
                notifier.keep_draining(stop),
            )
    finally:
        await close_all(bus.close(), store.close())  # within shutdown.CLOSE_SECONDS
    return 0


def sender_for(settings: Settings) -> Sender:
    """The HTTP sender of webhook deliveries, as configured."""
    notify = settings.notify
    return Sender(notify.webhook_timeout, notify.allow_private, settings.user_agent)
