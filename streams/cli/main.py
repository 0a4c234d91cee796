"""The `emowatch` command line: one CLI, subcommands per role."""
from __future__ import annotations

import sys
from pathlib import Path

import typer

from emowatch.streams.cli.alert import alert_app
from emowatch.streams.cli.bench import bench_app
from emowatch.streams.cli.common import console
from emowatch.streams.cli.common import settings_or_exit as _settings
from emowatch.streams.cli.export import export_app
from emowatch.streams.cli.local import demo, up
from emowatch.streams.cli.model import model_app
from emowatch.streams.cli.notify import notify_app
from emowatch.streams.cli.query import query_app
from emowatch.streams.cli.replay import replay
from emowatch.streams.cli.report import report_app
from emowatch.streams.cli.rescore import rescore
from emowatch.streams.cli.rules import rules_app
from emowatch.streams.cli.send import send
from emowatch.streams.cli.silence import silence_app
from emowatch.streams.cli.topics import topics_app

# pretty_exceptions_show_locals=False: a crash traceback must not print local variables (settings, URLs with
# passwords); older typer versions that pyproject allows default to True.
app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_show_locals=False,
                  help="emowatch: real-time speech-emotion monitoring on Kafka.")
worker_app = typer.Typer(no_args_is_help=True,
                         help="Run a service (inference agent, rules worker, ClickHouse sink, notifier, gateway).")
app.add_typer(worker_app, name="worker")
app.add_typer(topics_app, name="topics")
app.add_typer(rules_app, name="rules")
app.add_typer(model_app, name="model")
app.add_typer(bench_app, name="bench")
app.add_typer(notify_app, name="notify")
app.add_typer(silence_app, name="silence")
app.add_typer(alert_app, name="alert")
app.add_typer(query_app, name="query")
app.add_typer(report_app, name="report")
app.add_typer(export_app, name="export")
app.command("up")(up)
app.command("demo")(demo)
app.command("send")(send)
app.command("rescore")(rescore)
app.command("replay")(replay)


@worker_app.command("infer")
def worker_infer(
    http_port: int = typer.Option(0, help="Port of /health and /metrics (0 = settings / random)."),
) -> None:
    """Inference agent: audio topic -> emotion2vec (FunASR) -> scores topic."""
    from emowatch.streams.infer.service import InferenceAgent
    from emowatch.streams.observability import setup_logging

    s = _settings()
    if http_port:
        s = s.with_overrides(infer={"http_port": http_port})
    setup_logging(s.log_level, "infer")
    InferenceAgent(s).run()


@worker_app.command("sink")
def worker_sink(http_port: int = typer.Option(0, help="Port of /health and /metrics.")) -> None:
    """ClickHouse sink: scores + alerts topics -> ClickHouse (server URL or embedded chDB)."""
    from emowatch.streams.observability import setup_logging
    from emowatch.streams.sink.service import ClickHouseSink

    s = _settings()
    if http_port:
        s = s.with_overrides(sink={"http_port": http_port})
    setup_logging(s.log_level, "sink")
    ClickHouseSink(s).run()


@worker_app.command("notify")
def worker_notify(
    config: Path = typer.Option(None, "--config", help="Notifier configuration (default: EMOWATCH_NOTIFY__CONFIG_FILE "
                                                      "or the bundled example)."),
    http_port: int = typer.Option(0, help="Port of /health and /metrics."),
) -> None:
    """Notifier: alerts topic -> grouping, silences, acks -> webhook / email / chat robots / log."""
    from emowatch.streams.notify.errors import NotifyConfigError
    from emowatch.streams.notify.receivers.base import ReceiverConfigError
    from emowatch.streams.notify.service import Notifier
    from emowatch.streams.observability import setup_logging

    s = _settings()
    if http_port:
        s = s.with_overrides(notify={"http_port": http_port})
    setup_logging(s.log_level, "notify")
    try:
        notifier = Notifier(s, config_path=config)
    except (NotifyConfigError, ReceiverConfigError) as exc:
        console.print(f"[red]cannot start the notifier:[/] {exc}")
        raise typer.Exit(2) from None
    notifier.run()


@worker_app.command("gateway")
def worker_gateway(http_port: int = typer.Option(0, help="Port of the gateway's HTTP server (0 = settings).")) -> None:
    """Gateway: HTTP/WebSocket ingress of call audio -> audio topic; live board, console, OpenAPI (/docs)."""
    from emowatch.streams.gateway.service import Gateway
    from emowatch.streams.observability import setup_logging

    s = _settings()
    if http_port:
        s = s.with_overrides(gateway={"http_port": http_port})
    setup_logging(s.log_level, "gateway")
    Gateway(s).run()


@worker_app.command("rules")
def worker_rules(
    business_line: str = typer.Option("*", help="Business line this worker evaluates ('*' = all)."),
    rules_file: Path | None = typer.Option(
        None, help="Rule file (default: EMOWATCH_RULES__RULES_FILE or the bundled default)."),
    http_port: int = typer.Option(0, help="Port of the worker's web server (/health, /metrics, /calls/<id>)."),
) -> None:
    """Rules worker (Faust): scores -> per-call state -> alerts, one consumer group per business line."""
    from emowatch.streams.observability import setup_logging
    from emowatch.streams.resources import default_rules_file
    from emowatch.streams.rules_worker.service import RulesWorkerError, run_worker

    s = _settings()
    setup_logging(s.log_level, "rules")
    path = rules_file or s.rules.rules_file or default_rules_file()
    sys.argv = [sys.argv[0]]  # Faust's worker parses argv itself
    try:
        run_worker(s, business_line=business_line, rules_file=path, web_port=http_port or s.rules.http_port)
    except RulesWorkerError as exc:  # bad rules file, or one for another business line
        console.print(f"[red]cannot start the rules worker:[/] {exc}")
        raise typer.Exit(2) from None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
