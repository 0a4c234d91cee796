"""The baseline of ``emowatch bench rules``: a bare Faust loop that only updates a table.

Same broker, topic, partitions, table (memory store + changelog) and Faust settings as the
rules worker (``streams/rules_worker/``), but per message it only writes a tiny value to the table:
no Avro decoding, no rule evaluation, no alerts. Run it as
``python -m emowatch.bench.bare_faust_app --app-name NAME --http-port PORT [--decode]`` with the
usual ``EMOWATCH_*`` settings; ``/metrics`` counts the messages it has handled.
"""
from __future__ import annotations

import argparse
import sys

import faust
from prometheus_client import generate_latest

from emowatch.streams.kafka.clients import serde_for, topics_for
from emowatch.streams.observability import StageMetrics, setup_logging
from emowatch.streams.rules_worker.batch import CHANGELOG_CHUNK
from emowatch.streams.rules_worker.config import faust_config
from emowatch.streams.rules_worker.faust_compat import flush_send_buffer, set_fetch_max_wait, table_put
from emowatch.streams.settings import Settings, load_settings


def build_bare_app(settings: Settings, *, app_name: str, web_port: int, decode: bool = False,
                   batch: int = 0) -> faust.App:
    """A Faust app (id ``prefix + app_name``) whose agent does ``table[key] = {"n": len(value)}``.

    ``decode=True`` also decodes each value as Avro FrameScores first (to tell the cost of
    decoding apart from the cost of rule evaluation). ``batch > 0`` reads batches of that many
    events (``noack_take`` + acks, the rules worker's way, with its batch wait) instead of one event
    at a time; every event is still written to the table."""
    k = settings.kafka
    app = faust.App(f"{k.topic_prefix}{app_name}", **faust_config(k, web_port))
    set_fetch_max_wait(app, k.fetch_wait_max_ms)  # as the rules worker
    scores = app.topic(topics_for(k).scores, key_type=bytes, value_type=bytes, key_serializer="raw",
                       value_serializer="raw", internal=False)
    table = app.Table("calls", default=None, partitions=k.partitions, key_type=bytes)  # as the rules worker's
    metrics = StageMetrics("bare")
    serde = serde_for(k, "FrameScores", float_arrays="numpy")  # as the rules worker decodes
    topic = topics_for(k).scores

    @app.agent(scores)
    async def loop(stream):
        if batch:
            async for events in stream.noack_take(batch, within=settings.rules.batch_wait_ms / 1000.0):
                for i, event in enumerate(events, 1):
                    metrics.received.inc()
                    if decode:
                        serde.decode(event.value, topic=topic)
                    table_put(table, event.message.partition, event.key, {"n": len(event.value)})
                    if i % CHANGELOG_CHUNK == 0:  # as the rules worker hands its writes to the producer
                        await flush_send_buffer(app)
                for event in events:
                    await stream.ack(event)
            return
        async for event in stream.events():
            metrics.received.inc()
            if decode:
                serde.decode(event.value, topic=topic)
            table[event.key] = {"n": len(event.value)}

    @app.page("/metrics")
    async def prom(web, request):
        return web.bytes(generate_latest(metrics.registry), content_type="text/plain; version=0.0.4")

    return app


def main(argv: list[str] | None = None) -> None:
    from faust.worker import Worker

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--app-name", default="emowatch-bench-bare")
    parser.add_argument("--http-port", type=int, required=True)
    parser.add_argument("--decode", action="store_true", help="Also decode each value (Avro FrameScores).")
    parser.add_argument("--batch", type=int, default=0, help="Read batches of this many events (0: one at a time).")
    args = parser.parse_args(argv)
    settings = load_settings()
    setup_logging(settings.log_level, "bench-bare")
    app = build_bare_app(settings, app_name=args.app_name, web_port=args.http_port, decode=args.decode,
                         batch=args.batch)
    sys.argv = [sys.argv[0]]  # Faust's worker parses argv itself
    Worker(app, loglevel=settings.log_level, quiet=True, redirect_stdouts=False,
           override_logging=False).execute_from_commandline()


if __name__ == "__main__":
    main()
