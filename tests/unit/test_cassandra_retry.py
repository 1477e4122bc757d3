"""Which statements the Cassandra session sends again after a server timeout (retry.py)."""

from __future__ import annotations

import pytest
from cassandra import ConsistencyLevel, WriteType
from cassandra.policies import RetryPolicy
from cassandra.query import BatchStatement, SimpleStatement

from services.adapters.cassandra.batching import Batch
from services.adapters.cassandra.due import STATEMENTS as DUE
from services.adapters.cassandra.retry import ATTEMPTS, IdempotentRetry, idempotent
from services.adapters.cassandra.works import STATEMENTS as WORKS

QUORUM = ConsistencyLevel.LOCAL_QUORUM


@pytest.mark.parametrize(
    "cql",
    [
        WORKS["count_add"],  # a counter
        WORKS["id_claim"],  # a compare-and-set
        "UPDATE api_keys SET revoked_at=? WHERE key_id=? IF revoked_at = null",
        "UPDATE t SET tags = tags + ? WHERE k=?",  # a collection added to
        "UPDATE t SET items = ? + items WHERE k=?",  # a list prepended to
        "update t set n=n-? where k=?",
    ],
)
def test_relative_or_conditional_writes_are_not_idempotent(cql: str) -> None:
    assert not idempotent(cql)


@pytest.mark.parametrize(
    "cql",
    [
        WORKS["work_insert_terms"],
        WORKS["id_put"],
        WORKS["intake_seal"],
        WORKS["ids_in"],
        DUE["due_put"],
        DUE["due_del"],
        "UPDATE t SET notify=?, identical=? WHERE k=?",  # words holding IF are not conditions
    ],
)
def test_reads_and_fixed_writes_are_idempotent(cql: str) -> None:
    assert idempotent(cql)


def _statement(idempotent_: bool) -> SimpleStatement:
    return SimpleStatement("INSERT INTO t (k) VALUES (1)", is_idempotent=idempotent_)


@pytest.mark.parametrize("kind", [WriteType.SIMPLE, WriteType.UNLOGGED_BATCH, WriteType.BATCH])
def test_an_idempotent_write_is_sent_again_up_to_its_attempts(kind: int) -> None:
    policy = IdempotentRetry()
    decisions = [
        policy.on_write_timeout(_statement(True), QUORUM, kind, 1, 0, n)
        for n in range(ATTEMPTS + 1)
    ]
    assert decisions[:ATTEMPTS] == [(RetryPolicy.RETRY, QUORUM)] * ATTEMPTS
    assert decisions[ATTEMPTS] == (RetryPolicy.RETHROW, None)


@pytest.mark.parametrize("kind", [WriteType.SIMPLE, WriteType.COUNTER, WriteType.CAS])
def test_other_timed_out_writes_fail_as_the_driver_would(kind: int) -> None:
    policy, default = IdempotentRetry(), RetryPolicy()
    for statement in (_statement(False), _statement(True)):
        if statement.is_idempotent and kind == WriteType.SIMPLE:
            continue  # the case above
        got = policy.on_write_timeout(statement, QUORUM, kind, 1, 0, 0)
        assert got == default.on_write_timeout(statement, QUORUM, kind, 1, 0, 0)
        assert got[0] == RetryPolicy.RETHROW


def test_reads_are_retried_only_when_idempotent() -> None:
    policy = IdempotentRetry()
    read = SimpleStatement("SELECT k FROM t", is_idempotent=True)
    assert policy.on_read_timeout(read, QUORUM, 1, 0, False, 0)[0] == RetryPolicy.RETRY
    assert policy.on_read_timeout(read, QUORUM, 1, 0, False, ATTEMPTS)[0] == RetryPolicy.RETHROW
    other = SimpleStatement("SELECT k FROM t")
    assert policy.on_read_timeout(other, QUORUM, 1, 0, False, 0)[0] == RetryPolicy.RETHROW


def test_a_batch_is_idempotent_only_when_each_statement_is() -> None:
    class Bound(SimpleStatement):  # what a batch needs of a bound statement, no server
        pass

    fixed, counter = Bound("INSERT INTO t (k) VALUES (1)"), Bound("UPDATE c SET n=n+1 WHERE k=1")
    fixed.is_idempotent, counter.is_idempotent = True, False
    assert Batch([fixed, fixed]).is_idempotent
    assert not Batch([fixed, counter]).is_idempotent
    assert isinstance(Batch([fixed]), BatchStatement)
