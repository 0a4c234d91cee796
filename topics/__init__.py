"""emowatch.topics: the topic contracts.

Topic names, partitions and retention (:mod:`.registry`), Avro schemas
(``schemas/*.avsc``, :mod:`.catalog`), the value/key serde (:mod:`.serde`),
dead-letter records (:mod:`.dlq`), Kafka security config (:mod:`.security`)
and sample records (:mod:`.examples`). See ``docs/contracts.md``.

Nothing here talks to a broker; only :mod:`.serde` imports
``confluent_kafka.schema_registry``, and only when a registry URL is set.
"""

from emowatch.topics.catalog import SchemaInfo, fingerprint_table, latest_version, load_schema, schema_names
from emowatch.topics.dlq import STAGES, DeadLetterError, dead_letter
from emowatch.topics.registry import (
    DEFAULT_PARTITIONS_LOCAL,
    DEFAULT_PARTITIONS_PRODUCTION,
    PRODUCER_PARTITIONER,
    Topics,
    TopicSpec,
    check_topics,
    topic_config,
)
from emowatch.topics.security import kafka_security_config, redact
from emowatch.topics.serde import AvroSerde, SerdeError, decode_key, encode_key

__all__ = [
    "DEFAULT_PARTITIONS_LOCAL",
    "DEFAULT_PARTITIONS_PRODUCTION",
    "PRODUCER_PARTITIONER",
    "STAGES",
    "AvroSerde",
    "DeadLetterError",
    "SchemaInfo",
    "SerdeError",
    "TopicSpec",
    "Topics",
    "check_topics",
    "dead_letter",
    "decode_key",
    "encode_key",
    "fingerprint_table",
    "kafka_security_config",
    "latest_version",
    "load_schema",
    "redact",
    "schema_names",
    "topic_config",
]
