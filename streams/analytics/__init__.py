"""emowatch.streams.analytics: the seed's analyses over the ClickHouse history (queries, output, the call
report picture, embedding export). No Kafka."""
