"""Kafka adapters: the only modules that import Kafka clients."""
