"""`emowatch topics` commands: create, check and describe the registry's topics on the cluster.

Exit codes: 0 = every topic present and consistent; 1 = problems found (missing topics,
partition counts that break co-partitioning, a rules topic with more than one partition);
2 = the command could not run (bad settings, cluster unreachable). Nothing printed here
contains a secret: errors from the Kafka client are passed through ``redact_url``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import typer
from rich.markup import escape

from emowatch.streams.cli.common import console
from emowatch.streams.cli.common import settings_or_exit as _settings

if TYPE_CHECKING:
    from emowatch.topics.registry import Topics

topics_app = typer.Typer(no_args_is_help=True, help="Create and check the topics of the registry.")


@dataclass(frozen=True)
class _Cluster:
    """What every topics command needs: the registry's topics and how to reach the cluster."""

    topics: Topics
    bootstrap: str
    extra: dict


def _cluster() -> _Cluster:
    from emowatch.streams.kafka.clients import base_config, topics_for
    from emowatch.topics.security import SecurityConfigError

    s = _settings()
    try:
        extra = {k: v for k, v in base_config(s.kafka).items() if k != "bootstrap.servers"}
        topics = topics_for(s.kafka)
    except (SecurityConfigError, ValueError) as exc:
        _say(f"[red]configuration error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    return _Cluster(topics, s.kafka.bootstrap_servers, extra)


def _fail(action: str, c: _Cluster, exc: Exception) -> typer.Exit:
    from emowatch.topics.security import redact_url

    _say(f"[red]error:[/] cannot {action} on {escape(redact_url(c.bootstrap))}: {escape(redact_url(str(exc)))}")
    return typer.Exit(2)


def _say(text: str) -> None:
    """One output line: rich markup (escape dynamic text), no highlighting, never wrapped (greppable)."""
    console.print(text, highlight=False, soft_wrap=True)


def _print_problems(problems: list[str]) -> None:
    for p in problems:
        _say(f"[red]problem[/] {escape(p)}")


@topics_app.command("create")
def topics_create() -> None:
    """Create missing topics (idempotent) and report mismatches; exit 1 if any."""
    from emowatch.streams.kafka.admin import ensure_topics

    c = _cluster()
    try:
        rep = ensure_topics(c.bootstrap, c.topics, extra=c.extra)
    except Exception as exc:  # noqa: BLE001 - KafkaException, TimeoutError: report, do not dump a traceback
        raise _fail("create topics", c, exc) from None
    for n in rep.created:
        _say(f"[green]created[/] {n}")
    for n in rep.existing:
        _say(f"exists  {n}")
    _print_problems(rep.problems)
    raise typer.Exit(1 if rep.problems else 0)


@topics_app.command("check")
def topics_check() -> None:
    """Report missing topics and partition counts that break co-partitioning; exit 1 if any."""
    from emowatch.streams.kafka.admin import topic_partitions
    from emowatch.topics.registry import check_topics

    c = _cluster()
    try:
        actual = topic_partitions(c.bootstrap, c.extra)
    except Exception as exc:  # noqa: BLE001 - any client failure: report it, exit 2
        raise _fail("list topics", c, exc) from None
    problems = check_topics(c.topics, actual)
    _print_problems(problems)
    if not problems:
        _say("[green]all topics present and co-partitioned[/]")
    raise typer.Exit(1 if problems else 0)


@topics_app.command("describe")
def topics_describe() -> None:
    """List the registry's topics: schema, key, policy, expected and actual partitions."""
    from emowatch.streams.kafka.admin import topic_partitions
    from emowatch.topics.registry import check_topics, topic_config

    c = _cluster()
    try:
        actual = topic_partitions(c.bootstrap, c.extra)
    except Exception as exc:  # noqa: BLE001 - any client failure: report it, exit 2
        raise _fail("list topics", c, exc) from None
    for name, spec in c.topics.specs():
        expected = c.topics.partitions_for(spec)
        have = actual.get(name)
        state = "MISSING" if have is None else ("ok" if have == expected else f"expected {expected}")
        cfg = topic_config(spec)
        _say(f"{name:<40} value={spec.value_schema:<12} key={spec.key:<9} cleanup={cfg['cleanup.policy']:<8} "
             f"retention.ms={cfg['retention.ms']:<11} partitions={'-' if have is None else have} ({state})")
    _print_problems(check_topics(c.topics, actual))
