"""The notifier against a real receiver on loopback, over the in-process bus and SQLite:
signed deliveries, retries with backoff until the receiver is back, no retry of a 4xx,
disabling after consecutive failures, the queue of a failing hook, restarts and kills (at
least once), the bounded delivery log."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from services.adapters.memory.bus import MemoryBus
from services.adapters.sqlite import SqliteStore
from services.adapters.sqlite.hooks import SqliteHooks
from services.bootstrap import make_catalog
from services.core.change_filter import ChangeFilter
from services.core.events import TOPIC_CHANGED
from services.core.webhooks import Hook, Outcome
from services.notifier.sender import Sender
from services.notifier.service import Notifier
from services.notify_settings import NotifySettings
from tests.unit.changes_kit import change, publish
from tests.webhook_kit import Receiver

FAST = NotifySettings(
    retry_base=0.05, retry_max=0.2, webhook_timeout=2.0, max_failures=50, allow_private=True
)
NOW = datetime(2026, 1, 1, tzinfo=UTC)


@dataclass
class Env:
    """A notifier with its bus, hook store, receiver and a running drain loop."""

    bus: MemoryBus
    store: SqliteStore
    hooks: SqliteHooks
    receiver: Receiver
    settings: NotifySettings
    notifier: Notifier
    sender: Sender

    async def hook(self, flt: ChangeFilter | None = None, url: str | None = None) -> Hook:
        hook = Hook(
            f"wh_{len(await self.hooks.hooks())}",
            url or self.receiver.url,
            "whsec_test",
            flt or ChangeFilter(),
            NOW,
            NOW,
        )
        await self.hooks.add_hook(hook)
        await self.notifier.reload(force=True)  # not waiting for the next periodic read
        return hook

    def restart(self) -> Notifier:
        """A new notifier process over the same bus and store (the old one is gone)."""
        self.notifier = Notifier(
            self.bus, self.hooks, self.store, self.sender, self.settings, make_catalog()
        )
        return self.notifier


@asynccontextmanager
async def env(tmp_path: Path, **settings: Any) -> AsyncIterator[Env]:
    store = SqliteStore(tmp_path / "alm.sqlite")
    await store.migrate()
    bus = MemoryBus(retained=(TOPIC_CHANGED,))
    receiver = Receiver(secret="whsec_test")
    await receiver.start()
    notify = replace(FAST, **settings)
    hooks = SqliteHooks(store)
    try:
        async with Sender(notify.webhook_timeout, notify.allow_private, "ALM-test") as sender:
            notifier = Notifier(bus, hooks, store, sender, notify, make_catalog())
            yield Env(bus, store, hooks, receiver, notify, notifier, sender)
    finally:
        await receiver.stop()
        await store.close()


@asynccontextmanager
async def draining(e: Env) -> AsyncIterator[asyncio.Event]:
    """The notifier's drain loop running in the background."""
    stop = asyncio.Event()
    task = asyncio.create_task(e.notifier.keep_draining(stop, tick=0.01))
    try:
        yield stop
    finally:
        stop.set()
        await task


async def test_a_change_is_delivered_signed_with_its_event_id(tmp_path: Path) -> None:
    """One POST whose body is the change's JSON, signed (verified by the receiver), with the
    event id, event name and attempt headers; logged as delivered; the batch committed."""
    async with env(tmp_path) as e:
        hook = await e.hook()
        sent = change(1)
        await publish(e.bus, sent)
        assert await e.notifier.step(0) == 1
        [got] = e.receiver.got
        log = await e.hooks.attempts(hook.hook_id, 10)
        health = (await e.hooks.health([hook.hook_id]))[hook.hook_id]
        lag = e.bus.lag(TOPIC_CHANGED, Notifier.GROUP)
    assert got.signed
    assert got.json == sent.to_dict()
    assert got.headers["ALM-Event-Id"] == sent.event_id
    assert got.headers["ALM-Event"] == "metric_changed"
    assert got.headers["ALM-Webhook-Id"] == hook.hook_id
    assert got.headers["ALM-Delivery-Attempt"] == "1"
    assert got.headers["Content-Type"] == "application/json"
    assert [(a.event_id, a.outcome, a.status) for a in log] == [
        (sent.event_id, Outcome.DELIVERED, 200)
    ]
    assert health.consecutive_failures == 0 and health.last_success_at is not None
    assert lag == 0


async def test_only_matching_hooks_get_a_change(tmp_path: Path) -> None:
    """Each hook gets the changes its filter passes, once each."""
    async with env(tmp_path) as e:
        await e.hook(ChangeFilter.of(sources=["openalex"]))
        await e.hook(ChangeFilter.of(groups=["cited"]))
        await publish(
            e.bus,
            change(1),
            change(2, source="openalex"),
            change(3, source="reddit", delta={"comments": 1}),
        )
        await e.notifier.step(0)
    by_hook: dict[str, list[str]] = {}
    for r in e.receiver.got:
        by_hook.setdefault(r.headers["ALM-Webhook-Id"], []).append(r.json["source"])
    assert {k: sorted(v) for k, v in by_hook.items()} == {
        "wh_0": ["openalex"],
        "wh_1": ["crossref", "openalex"],
    }


async def test_a_receiver_that_fails_twice_gets_the_change_once_it_is_back(
    tmp_path: Path,
) -> None:
    """500, 503, then 200: the same change, same event id, attempts 1, 2, 3, delivered once;
    the log shows retry, retry, delivered; then the hook is direct again."""
    async with env(tmp_path) as e, draining(e):
        hook = await e.hook()
        e.receiver.script = [500, 503]
        sent = change(1)
        await publish(e.bus, sent)
        await e.notifier.step(0)
        await e.receiver.wait_for(lambda: len(e.receiver.delivered()) == 1)
        await e.receiver.wait_for(lambda: not e.notifier.states[hook.hook_id].queue_mode)
        await publish(e.bus, change(2))
        await e.notifier.step(0)
        log = await e.hooks.attempts(hook.hook_id, 10)
    attempts = [
        (r.headers["ALM-Event-Id"], r.headers["ALM-Delivery-Attempt"], r.status)
        for r in e.receiver.got
    ]
    assert attempts[:3] == [
        (sent.event_id, "1", 500),
        (sent.event_id, "2", 503),
        (sent.event_id, "3", 200),
    ]
    assert attempts[3] == (change(2).event_id, "1", 200)
    assert [a.outcome for a in reversed(log)] == [
        Outcome.RETRY,
        Outcome.RETRY,
        Outcome.DELIVERED,
        Outcome.DELIVERED,
    ]
    assert log[-1].next_at is not None


async def test_a_failing_receiver_is_probed_not_hammered_and_gets_all_in_order(
    tmp_path: Path,
) -> None:
    """While a receiver fails, new changes queue behind the first instead of each being sent:
    only the oldest is tried, once per backoff; once back, all arrive, oldest first."""
    async with env(tmp_path) as e:
        await e.hook()
        e.receiver.then = 500
        for n in range(5):
            await publish(e.bus, change(n))
            await e.notifier.step(0)
        assert len(e.receiver.got) == 1  # the later ones were queued, not sent
        async with draining(e):
            await e.receiver.wait_for(lambda: len(e.receiver.got) >= 3)
            tried = {r.json["work_id"] for r in e.receiver.got}
            e.receiver.then = 200
            await e.receiver.wait_for(lambda: len(e.receiver.delivered()) == 5)
    assert tried == {"10.5555/w0"}
    assert [r.json["work_id"] for r in e.receiver.delivered()] == [
        f"10.5555/w{n}" for n in range(5)
    ]


async def test_a_4xx_is_not_retried(tmp_path: Path) -> None:
    """A 400 fails that delivery for good (logged), and the next change goes straight out."""
    async with env(tmp_path) as e, draining(e):
        hook = await e.hook()
        e.receiver.script = [400]
        await publish(e.bus, change(1))
        await e.notifier.step(0)
        await publish(e.bus, change(2))
        await e.notifier.step(0)
        await asyncio.sleep(0.3)  # time for a retry that must not happen
        log = await e.hooks.attempts(hook.hook_id, 10)
    assert [r.status for r in e.receiver.got] == [400, 200]
    assert [a.outcome for a in reversed(log)] == [Outcome.FAILED, Outcome.DELIVERED]


async def test_consecutive_failures_disable_the_hook_until_enabled_again(
    tmp_path: Path,
) -> None:
    """After max_failures failed attempts in a row the hook is disabled with the reason; its
    queue is kept, and enabling it again delivers what waited."""
    async with env(tmp_path, max_failures=3) as e, draining(e):
        hook = await e.hook()
        e.receiver.then = 503
        await publish(e.bus, change(1))
        await e.notifier.step(0)

        async def disabled() -> Hook:
            found = await e.hooks.get_hook(hook.hook_id)
            assert found is not None
            return found

        await e.receiver.wait_for(lambda: len(e.receiver.got) >= 3)
        async with asyncio.timeout(5):
            while (await disabled()).enabled:  # noqa: ASYNC110 (the store decides)
                await asyncio.sleep(0.02)
        off = await disabled()
        assert off.disabled_reason is not None
        assert off.disabled_reason.startswith("3 consecutive failed deliveries")
        assert "HTTP 503" in off.disabled_reason
        await asyncio.sleep(0.3)
        assert len(e.receiver.got) == 3  # disabled: not tried again
        e.receiver.then = 200
        await e.hooks.set_enabled(hook.hook_id, True, None, NOW)
        await e.receiver.wait_for(lambda: len(e.receiver.delivered()) == 1)
        health = (await e.hooks.health([hook.hook_id]))[hook.hook_id]
    assert e.receiver.delivered()[0].json["work_id"] == "10.5555/w1"
    assert health.consecutive_failures == 0


async def test_killed_mid_delivery_the_change_is_delivered_again(tmp_path: Path) -> None:
    """A notifier killed while a receiver is answering never committed its batch: the next
    one delivers the change again (at least once; same event id for the receiver to drop)."""
    async with env(tmp_path) as e:
        await e.hook()
        e.receiver.delay = 0.5
        await publish(e.bus, change(1))
        step = asyncio.create_task(e.notifier.step(0))
        await e.receiver.wait_for(lambda: len(e.receiver.got) == 1)
        step.cancel()  # killed: nothing after the request runs
        with pytest.raises(asyncio.CancelledError):
            await step
        e.receiver.delay = 0
        await e.notifier.consumer.close()
        assert await e.restart().step(0) == 1
    ids = [r.headers["ALM-Event-Id"] for r in e.receiver.got]
    assert ids == [change(1).event_id] * 2


async def test_a_restarted_notifier_delivers_what_was_queued(tmp_path: Path) -> None:
    """Deliveries queued for a failing receiver survive a restart of the notifier and go out
    when the receiver is back."""
    async with env(tmp_path) as e:
        await e.hook()
        e.receiver.then = 500
        for n in range(3):
            await publish(e.bus, change(n))
        await e.notifier.step(0)
        e.receiver.then = 200
        e.restart()
        async with draining(e):
            await e.receiver.wait_for(lambda: len(e.receiver.delivered()) == 3)
    assert sorted(r.json["work_id"] for r in e.receiver.delivered()) == [
        f"10.5555/w{n}" for n in range(3)
    ]


async def test_a_receiver_that_does_not_answer_in_time_is_retried(tmp_path: Path) -> None:
    """A timeout counts as a failure worth retrying."""
    async with env(tmp_path, webhook_timeout=0.2) as e, draining(e):
        hook = await e.hook()
        e.receiver.delay = 1.0
        await publish(e.bus, change(1))
        await e.notifier.step(0)
        e.receiver.delay = 0
        await e.receiver.wait_for(lambda: len(e.receiver.got) >= 2)
        await e.receiver.wait_for(lambda: e.notifier.delivered == 1)
        log = await e.hooks.attempts(hook.hook_id, 10)
    first = log[-1]
    assert first.outcome is Outcome.RETRY
    assert first.error is not None and "timed out" in first.error


async def test_private_receivers_are_refused_unless_allowed(tmp_path: Path) -> None:
    """Without ALM_WEBHOOK_ALLOW_PRIVATE nothing is sent to a loopback receiver, by name or
    address; the refusal is logged and counts as a failure."""
    async with env(tmp_path, allow_private=False) as e:
        by_ip = await e.hook()
        by_name = await e.hook(url=e.receiver.url.replace("127.0.0.1", "localhost"))
        await publish(e.bus, change(1))
        await e.notifier.step(0)
        logs = [await e.hooks.attempts(h.hook_id, 10) for h in (by_ip, by_name)]
    assert e.receiver.got == []
    assert [[a.outcome for a in log] for log in logs] == [[Outcome.REFUSED], [Outcome.REFUSED]]


async def test_a_queue_past_its_limit_disables_the_hook(tmp_path: Path) -> None:
    """A failing hook may not owe more than queue_limit deliveries: it is disabled."""
    async with env(tmp_path, queue_limit=2) as e:
        hook = await e.hook()
        e.receiver.then = 500
        await publish(e.bus, *(change(n) for n in range(5)))
        await e.notifier.step(0)
        found = await e.hooks.get_hook(hook.hook_id)
    assert found is not None and not found.enabled
    assert found.disabled_reason == "more than 2 deliveries waiting for the receiver"


async def test_the_delivery_log_keeps_the_newest(tmp_path: Path) -> None:
    """The log of a hook is bounded to log_size entries, the newest."""
    async with env(tmp_path, log_size=3) as e:
        hook = await e.hook()
        for n in range(6):
            await publish(e.bus, change(n))
            await e.notifier.step(0)
        log = await e.hooks.attempts(hook.hook_id, 100)
    assert [a.event_id for a in log] == [change(n).event_id for n in (5, 4, 3)]


async def test_a_new_hook_is_picked_up_without_a_restart(tmp_path: Path) -> None:
    """Hooks registered while the notifier runs get the changes that follow."""
    async with env(tmp_path) as e:
        await publish(e.bus, change(0))
        await e.notifier.step(0)
        await e.hook()
        await e.notifier.reload(force=True)
        await publish(e.bus, change(1))
        await e.notifier.step(0)
    assert [r.json["work_id"] for r in e.receiver.got] == ["10.5555/w1"]


async def test_a_commit_that_fails_redoes_the_batch(tmp_path: Path) -> None:
    """Kafka away at the commit: the step fails and the consumer goes back to the committed
    offsets, so the next step delivers the batch again (at least once) instead of skipping it."""
    async with env(tmp_path) as e:
        await e.hook()
        sent = change(1)
        await publish(e.bus, sent)
        consumer = e.notifier.consumer
        commit = consumer.commit
        calls = 0

        async def failing_commit() -> None:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise ConnectionError("broker away")
            await commit()

        consumer.commit = failing_commit  # type: ignore[method-assign]
        with pytest.raises(ConnectionError):
            await e.notifier.step(0)
        assert await e.notifier.step(0) == 1
        lag = e.bus.lag(TOPIC_CHANGED, Notifier.GROUP)
    assert [g.headers["ALM-Event-Id"] for g in e.receiver.got] == [sent.event_id] * 2
    assert lag == 0
