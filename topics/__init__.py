"""emowatch.topics: the topic contracts.

Topic names, partitions and retention (:mod:`.registry`), Avro schemas
(``schemas/*.avsc``, :mod:`.catalog`), the value/key serde (:mod:`.serde`),
dead-letter records (:mod:`.dlq`), Kafka security config (:mod:`.security`)
and sample records (:mod:`.examples`). See ``docs/contracts.md``.

Nothing here talks to a broker; only :mod:`.serde` imports
``confluent_kafka.schema_registry``, and only when a registry URL is set.
"""

from __future__ import annotations

import importlib
from typing import Any

# public name -> defining module; imported on first use (PEP 562), so that importing one
# small module such as ``emowatch.topics.frames`` does not load fastavro and the serde.
_EXPORTS = {
    **dict.fromkeys(("SchemaInfo", "fingerprint_table", "latest_version", "load_schema", "schema_names"), "catalog"),
    **dict.fromkeys(("STAGES", "DeadLetterError", "dead_letter"), "dlq"),
    **dict.fromkeys(("DEFAULT_PARTITIONS_LOCAL", "DEFAULT_PARTITIONS_PRODUCTION", "PRODUCER_PARTITIONER", "Topics",
                     "TopicSpec", "check_topics", "topic_config"), "registry"),
    **dict.fromkeys(("kafka_security_config", "redact"), "security"),
    **dict.fromkeys(("AvroSerde", "SerdeError", "decode_key", "encode_key"), "serde"),
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_EXPORTS])


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
