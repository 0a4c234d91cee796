"""What a call id may be on the topics (the one definition).

A call id is the Kafka key of the audio, scores and alerts topics, the key of the rules workers' call table and a
column of every ClickHouse table, so its length is bounded once, here: the gateway refuses a longer one in the URL
(``streams/gateway/ingest.py``, which also limits the characters to what a URL carries plainly) and the inference
agent dead-letters an AudioChunk with a longer one (``call_id_too_long``), as it does an empty one. 128 characters
hold every id format seen in contact-centre platforms (UUIDs, SIP Call-IDs with a host part, vendor contact ids).
"""

from __future__ import annotations

__all__ = ["MAX_CALL_ID_CHARS"]

#: Longest call id accepted anywhere (characters).
MAX_CALL_ID_CHARS = 128
