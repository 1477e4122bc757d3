"""The HookStore contract: same calls, same answers from SqliteHooks and CassandraHooks.

tests/unit/test_hooks_store_contract.py runs it against SQLite (it needs nothing),
tests/integration/test_hooks_store_contract.py against Cassandra (real server, this run's own
keyspace); each gives the `hooks` fixture. Every test uses its own hook ids.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.adapters.cassandra.hooks import BUCKET
from services.core.change_filter import ChangeFilter
from services.core.webhooks import Attempt, Hook, HookHealth, HookStore, Outcome, Queued

T0 = datetime(2026, 11, 25, 12, 0, 0, 123000, tzinfo=UTC)


def new_hook(**changes: object) -> Hook:
    """A hook with a fresh id."""
    base = {
        "hook_id": f"wh_{uuid.uuid4().hex[:24]}",
        "url": "https://hooks.example.org/x",
        "secret": "whsec_abc",
        "filter": ChangeFilter.of(["crossref"], ["cited"], ["PLOS"], ["10.5555/a"]),
        "created_at": T0,
        "enabled_at": T0,
        "description": "mine",
    }
    return Hook(**{**base, **changes})  # type: ignore[arg-type]


async def test_a_hook_is_stored_whole_and_listed(hooks: HookStore) -> None:
    """add, get and the list give back the same hook, secret and filter included."""
    hook = new_hook()
    await hooks.add_hook(hook)
    assert await hooks.get_hook(hook.hook_id) == hook
    assert hook in await hooks.hooks()
    assert await hooks.get_hook("wh_unknown") is None


async def test_disable_and_enable(hooks: HookStore) -> None:
    """Disabling keeps the reason and time; enabling clears them, moves enabled_at and
    resets the failure count and retry time (the queue count stays)."""
    hook = new_hook()
    await hooks.add_hook(hook)
    await hooks.set_health(HookHealth(hook.hook_id, 7, None, T0, "HTTP 500", 3, T0))
    off = await hooks.set_enabled(hook.hook_id, False, "too many failures", T0)
    assert off is not None
    assert (off.enabled, off.disabled_reason, off.disabled_at) == (False, "too many failures", T0)
    later = T0 + timedelta(hours=1)
    on = await hooks.set_enabled(hook.hook_id, True, None, later)
    assert on is not None
    assert (on.enabled, on.disabled_reason, on.disabled_at, on.enabled_at) == (
        True,
        None,
        None,
        later,
    )
    health = (await hooks.health([hook.hook_id]))[hook.hook_id]
    assert (health.consecutive_failures, health.retry_at, health.queued) == (0, None, 3)
    assert health.last_error == "HTTP 500"
    assert await hooks.set_enabled("wh_unknown", True, None, T0) is None


async def test_health_round_trips(hooks: HookStore) -> None:
    """What the notifier records is what the API reads; unknown hooks have none."""
    hook = new_hook()
    health = HookHealth(hook.hook_id, 2, T0, T0 + timedelta(seconds=1), "timed out", 5, T0)
    await hooks.set_health(health)
    assert await hooks.health([hook.hook_id, "wh_none"]) == {hook.hook_id: health}
    assert await hooks.health([]) == {}


def attempt(hook_id: str, seq: int) -> Attempt:
    return Attempt(hook_id, seq, f"e{seq}", 1, T0, Outcome.RETRY, 503, "HTTP 503", 12, T0)


async def test_the_log_keeps_the_newest(hooks: HookStore) -> None:
    """Attempts come back newest first, and a log keeps about its newest `keep` (at most
    1.5 x keep between trims), never fewer than `keep`."""
    hook_id = new_hook().hook_id
    for start in range(0, 40, 4):
        await hooks.log_attempts([attempt(hook_id, s) for s in range(start, start + 4)], 10)
    kept = await hooks.attempts(hook_id, 100)
    assert [a.seq for a in kept[:10]] == list(range(39, 29, -1))
    assert 10 <= len(kept) <= 15
    assert kept[0] == attempt(hook_id, 39)
    assert [a.seq for a in await hooks.attempts(hook_id, 3)] == [39, 38, 37]


async def test_the_queue_is_fifo_across_minutes_and_dequeue_drops_a_prefix(
    hooks: HookStore,
) -> None:
    """Deliveries come back oldest first after a given seq, whatever minute they were queued
    in; dequeue drops everything up to a seq, the rest stays."""
    hook_id = new_hook().hook_id
    base = 1_800_000_000 * 10**9
    seqs = [base + n * BUCKET // 2 for n in range(7)]  # about 3 minutes of queueing
    await hooks.enqueue([Queued(hook_id, s, f"e{n}", f'{{"n": {n}}}') for n, s in enumerate(seqs)])
    got = await hooks.queued(hook_id, 0, 100)
    assert [q.seq for q in got] == seqs
    assert got[2] == Queued(hook_id, seqs[2], "e2", '{"n": 2}')
    assert [q.seq for q in await hooks.queued(hook_id, seqs[1], 3)] == seqs[2:5]
    await hooks.dequeue(hook_id, seqs[4])
    assert [q.seq for q in await hooks.queued(hook_id, 0, 100)] == seqs[5:]
    await hooks.dequeue(hook_id, seqs[6])
    assert await hooks.queued(hook_id, 0, 100) == []


async def test_delete_takes_everything_of_the_hook(hooks: HookStore) -> None:
    """A deleted hook leaves no health, log or queue behind; others keep theirs."""
    hook, other = new_hook(), new_hook()
    for h in (hook, other):
        await hooks.add_hook(h)
        await hooks.set_health(HookHealth(h.hook_id, 1))
        await hooks.log_attempts([attempt(h.hook_id, 1)], 10)
        await hooks.enqueue([Queued(h.hook_id, 1, "e", "{}")])
    assert await hooks.delete_hook(hook.hook_id)
    assert not await hooks.delete_hook(hook.hook_id)
    assert await hooks.get_hook(hook.hook_id) is None
    assert await hooks.health([hook.hook_id]) == {}
    assert await hooks.attempts(hook.hook_id, 10) == []
    assert await hooks.queued(hook.hook_id, 0, 10) == []
    assert await hooks.get_hook(other.hook_id) == other
    assert len(await hooks.queued(other.hook_id, 0, 10)) == 1
