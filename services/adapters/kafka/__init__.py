"""The Kafka adapter, one module a job:

- settings.py: the cluster, topic prefix and client id (KafkaConnection)
- records.py: events to keyed (packed) records and back, the key's partition
- producer.py: publishing, aiokafka on the event loop (acks=all, idempotent)
- consumer.py: a consumer-group member (kafka-python on a thread of its own), lag.py its lag
- reader.py: reading partition ranges outside any group (the aggregator's recovery)
- admin.py: the ALM topics and creating them
- feed.py: the change feed (SSE) over alm.metrics.changed
- bus.py: KafkaBus, the Bus port composed of the parts above
"""

from services.adapters.kafka.admin import ensure_topics
from services.adapters.kafka.bus import KafkaBus
from services.adapters.kafka.consumer import KafkaBusConsumer
from services.adapters.kafka.records import partition_of
from services.adapters.kafka.settings import KafkaConnection

__all__ = [
    "KafkaBus",
    "KafkaBusConsumer",
    "KafkaConnection",
    "ensure_topics",
    "partition_of",
]
