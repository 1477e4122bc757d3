"""KafkaBus with no broker: publishing fails with the client's error, and leaves nothing open."""

from __future__ import annotations

import asyncio
import socket

import pytest
from aiokafka.errors import KafkaConnectionError

from services.adapters.kafka import KafkaBus


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_publishing_without_a_broker_raises_and_can_be_retried() -> None:
    bus = KafkaBus(f"127.0.0.1:{closed_port()}")
    for _ in range(2):  # a second attempt tries again (nothing half-started is kept)
        with pytest.raises(KafkaConnectionError):
            await asyncio.wait_for(bus.publish("alm.works", [("10.1/x", {"n": 1})]), 30)
        assert not bus.producer.started
    await bus.close()
