"""`emowatch topics` commands."""
from __future__ import annotations

from pathlib import Path

import typer

from emowatch.streams.cli_common import console, settings_or_exit as _settings  # noqa: F401

topics_app = typer.Typer(no_args_is_help=True, help="Create and check the topics of the registry.")


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
