"""The `emowatch` command line: one CLI, subcommands per role."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from emowatch.streams.settings import SettingsError, load_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help="emowatch: real-time speech-emotion monitoring on Kafka.")
worker_app = typer.Typer(no_args_is_help=True, help="Run a service (inference agent, rules worker, ClickHouse sink).")
topics_app = typer.Typer(no_args_is_help=True, help="Create and check the topics of the registry.")
rules_app = typer.Typer(no_args_is_help=True, help="Validate and publish rule files.")
model_app = typer.Typer(no_args_is_help=True, help="Model utilities (demo checkpoint).")
app.add_typer(worker_app, name="worker")
app.add_typer(topics_app, name="topics")
app.add_typer(rules_app, name="rules")
app.add_typer(model_app, name="model")
console = Console()


def _settings():
    try:
        return load_settings()
    except SettingsError as exc:
        console.print(f"[red]configuration error:[/] {exc}")
        raise typer.Exit(2) from None


@app.command()
def demo(
    data_dir: Path = typer.Option(Path(".emowatch/demo"), help="Where the demo keeps ClickHouse data and logs (wiped first)."),
    rules_file: Optional[Path] = typer.Option(None, help="Rule file (default: the bundled rules/default.yaml)."),
    realtime: float = typer.Option(0.0, help="Pace the sample calls (1.0 = real time; 0 = as fast as possible)."),
    timeout_s: float = typer.Option(600.0, help="Give up after this many seconds."),
) -> None:
    """Stream the bundled sample calls through the whole pipeline on the embedded local stack."""
    from emowatch.streams.demo import run_demo

    _settings()  # fail fast on bad EMOWATCH_* variables
    result = run_demo(data_dir=data_dir, rules_file=rules_file, realtime=realtime, timeout_s=timeout_s, console=console)
    if len(result.scores) != result.chunks_sent:
        raise typer.Exit(1)


@worker_app.command("infer")
def worker_infer(http_port: int = typer.Option(0, help="Port of /health and /metrics (0 = settings / random).")) -> None:
    """Inference agent: audio topic -> emotion2vec (FunASR) -> scores topic."""
    from emowatch.streams.io.infer_service import InferenceService
    from emowatch.streams.observability import setup_logging

    s = _settings()
    if http_port:
        s = s.with_overrides(infer={"http_port": http_port})
    setup_logging(s.log_level, "infer")
    InferenceService(s).run()


@worker_app.command("sink")
def worker_sink(http_port: int = typer.Option(0, help="Port of /health and /metrics.")) -> None:
    """ClickHouse sink: scores + alerts topics -> ClickHouse (server URL or embedded chDB)."""
    from emowatch.streams.io.sink_service import SinkService
    from emowatch.streams.observability import setup_logging

    s = _settings()
    if http_port:
        s = s.with_overrides(sink={"http_port": http_port})
    setup_logging(s.log_level, "sink")
    SinkService(s).run()


@worker_app.command("rules")
def worker_rules(
    business_line: str = typer.Option("*", help="Business line this worker evaluates ('*' = all)."),
    rules_file: Optional[Path] = typer.Option(None, help="Rule file (default: EMOWATCH_RULES__RULES_FILE or the bundled default)."),
    http_port: int = typer.Option(0, help="Port of the worker's web server (/health, /metrics, /calls/<id>)."),
) -> None:
    """Rules worker (Faust): scores -> per-call state -> alerts, one consumer group per business line."""
    from emowatch.streams.demo import default_rules_file
    from emowatch.streams.io.rules_app import run_worker
    from emowatch.streams.observability import setup_logging

    s = _settings()
    setup_logging(s.log_level, "rules")
    path = rules_file or s.rules.rules_file or default_rules_file()
    sys.argv = [sys.argv[0]]  # Faust's worker parses argv itself
    run_worker(s, business_line=business_line, rules_file=path, web_port=http_port or s.rules.http_port)


@topics_app.command("create")
def topics_create() -> None:
    """Create missing topics (idempotent) and report mismatches."""
    from emowatch.streams.io.admin import ensure_topics
    from emowatch.streams.io.kafka import base_config, topics_for

    s = _settings()
    extra = {k: v for k, v in base_config(s.kafka).items() if k != "bootstrap.servers"}
    rep = ensure_topics(s.kafka.bootstrap_servers, topics_for(s.kafka), extra=extra)
    for n in rep.created:
        console.print(f"[green]created[/] {n}")
    for n in rep.existing:
        console.print(f"exists  {n}")
    for p in rep.problems:
        console.print(f"[red]problem[/] {p}")
    raise typer.Exit(1 if rep.problems else 0)


@topics_app.command("check")
def topics_check() -> None:
    """Report missing topics and partition counts that break co-partitioning."""
    from emowatch.streams.io.admin import topic_partitions
    from emowatch.streams.io.kafka import base_config, topics_for
    from emowatch.topics.registry import check_topics

    s = _settings()
    extra = {k: v for k, v in base_config(s.kafka).items() if k != "bootstrap.servers"}
    problems = check_topics(topics_for(s.kafka), topic_partitions(s.kafka.bootstrap_servers, extra))
    for p in problems:
        console.print(f"[red]problem[/] {p}")
    if not problems:
        console.print("[green]all topics present and co-partitioned[/]")
    raise typer.Exit(1 if problems else 0)


@topics_app.command("describe")
def topics_describe() -> None:
    """List the registry's topics with their partitions on the cluster."""
    from emowatch.streams.io.admin import topic_partitions
    from emowatch.streams.io.kafka import base_config, topics_for

    s = _settings()
    extra = {k: v for k, v in base_config(s.kafka).items() if k != "bootstrap.servers"}
    actual = topic_partitions(s.kafka.bootstrap_servers, extra)
    for name, spec in topics_for(s.kafka).specs():
        console.print(f"{name:<32} schema={spec.value_schema:<12} partitions={actual.get(name, 'MISSING')}")


@rules_app.command("check")
def rules_check(files: list[Path]) -> None:
    """Validate rule files; print file:line: reason for each problem."""
    from emowatch.rules.check import check_files

    errors = check_files(files)
    for e in errors:
        console.print(f"[red]{e}[/]")
    if not errors:
        console.print(f"[green]{len(files)} rule file(s) OK[/]")
    raise typer.Exit(1 if errors else 0)


@model_app.command("train-demo")
def model_train_demo(out_dir: Path = typer.Option(Path("models/demo"), help="Where to write the checkpoint."),
                     seed: int = typer.Option(0)) -> None:
    """Train the small demo checkpoint (a pipeline demo model, NOT an emotion model)."""
    from emowatch.models.train import train_demo

    train_demo(out_dir, seed=seed)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
