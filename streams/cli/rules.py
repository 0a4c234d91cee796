"""`emowatch rules` commands."""
from __future__ import annotations

from pathlib import Path

import typer

from emowatch.streams.cli.common import console  # noqa: F401
from emowatch.streams.cli.common import settings_or_exit as _settings
from emowatch.streams.cli.reset import rules_reset

rules_app = typer.Typer(no_args_is_help=True, help="Validate and publish rule files; reset a business line's workers.")


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


@rules_app.command("publish")
def rules_publish(
    file: Path,
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate (rules and examples) but do not publish."),
) -> None:
    """Validate a rule file (as `check` does) and write it to the compacted rules topic.

    Every rules worker of the file's business line swaps to it without a restart (a `*` file
    reaches the workers that run no set of their own line); alerts then carry its `rule_version`.
    Precedence: docs/rules.md section 10. Exit 1 when the file is invalid (nothing is published),
    2 when the broker did not acknowledge it.
    """
    from rich.markup import escape

    from emowatch.rules.check import check_files
    from emowatch.rules.loader import load_ruleset

    errors = check_files([file])
    for e in errors:
        console.print(f"[red]{escape(str(e))}[/]")
    if errors:
        console.print(f"[red]not published:[/] {len(errors)} problem(s) in {escape(str(file))}")
        raise typer.Exit(1)
    ruleset = load_ruleset(file)
    what = f"rule set {ruleset.rule_set!r} (business line {ruleset.business_line!r}, version {ruleset.version})"
    if dry_run:
        console.print(f"[green]valid:[/] {escape(what)}; not published (--dry-run)")
        return
    from emowatch.streams.kafka.rules_publisher import PublishError, publish_ruleset
    from emowatch.topics.security import redact_url

    s = _settings()
    try:
        done = publish_ruleset(s.kafka, ruleset)
    except PublishError as exc:
        console.print(f"[red]error:[/] {escape(redact_url(str(exc)))}")
        raise typer.Exit(2) from None
    console.print(f"[green]published[/] {escape(what)} to {escape(f'{done.topic}[{done.partition}]@{done.offset}')}")


rules_app.command("reset")(rules_reset)
