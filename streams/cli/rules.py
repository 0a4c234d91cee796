"""`emowatch rules` commands."""
from __future__ import annotations

from pathlib import Path

import typer

from emowatch.streams.cli.common import console  # noqa: F401
from emowatch.streams.cli.common import settings_or_exit as _settings
from emowatch.streams.cli.reset import rules_reset
from emowatch.streams.cli.rules_eval import rules_evaluate

rules_app = typer.Typer(no_args_is_help=True, help="Validate, evaluate and publish rule files; reset a business "
                                                    "line's workers.")


@rules_app.command("check")
def rules_check(files: list[Path]) -> None:
    """Validate rule files and run their examples; print file:line: reason for each problem.

    A file in the seed's format (alert_rules.yaml: name, emotion, threshold, duration_sec,
    combination, priority, channels) is converted in memory and the result checked.
    """
    from rich.markup import escape

    from emowatch.rules.check import check_files

    notes: list[str] = []
    errors = check_files(files, notes=notes)
    for note in notes:
        console.print(f"[yellow]note:[/] {escape(note)}")
    for e in errors:
        console.print(f"[red]{escape(str(e))}[/]")
    if not errors:
        console.print(f"[green]{len(files)} rule file(s) OK[/]")
    raise typer.Exit(1 if errors else 0)


@rules_app.command("convert")
def rules_convert(
    file: Path,
    out: Path | None = typer.Option(None, "--out", "-o", help="Write the emowatch rule file here (default: stdout)."),
    rule_set: str | None = typer.Option(None, "--rule-set", help="Rule-set id (default: the file's name)."),
    business_line: str = typer.Option("*", "--business-line", help="Business line the rule set serves."),
) -> None:
    """Convert a seed rule file (alert_rules.yaml) into an emowatch rule file.

    emotion + threshold -> when: {emotion, above}; combination -> when: {sum, above: min_sum};
    duration_sec -> for; name, priority, channels kept; each rule gets an id and examples.
    Exit 1 with file:line: reason for input that cannot be converted (docs/rules.md).
    """
    from rich.console import Console
    from rich.markup import escape

    from emowatch.rules.errors import RuleFileError
    from emowatch.rules.loader import read_rule_file
    from emowatch.rules.seed_convert import SeedOptionError, convert_seed

    err = Console(stderr=True, soft_wrap=True)  # file:line: reason stays one line
    try:
        conversion = convert_seed(read_rule_file(file), str(file), rule_set=rule_set, business_line=business_line)
    except RuleFileError as exc:
        for e in exc.errors or [exc]:
            err.print(f"[red]{escape(str(e))}[/]")
        err.print(f"[red]not converted:[/] {len(exc.errors or [exc])} problem(s) in {escape(str(file))}")
        raise typer.Exit(1) from None
    except SeedOptionError as exc:
        err.print(f"[red]error:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    rs = conversion.ruleset
    what = (f"{len(rs.rules)} rule(s) -> rule set {rs.rule_set!r} (business line {rs.business_line!r}), "
            f"{sum(len(r.examples) for r in rs.rules)} generated example(s) pass")
    if out is None:
        typer.echo(conversion.text, nl=False)
        err.print(f"[green]converted[/] {escape(str(file))}: {escape(what)}")
        return
    try:
        out.write_text(conversion.text, encoding="utf-8")
    except OSError as exc:
        err.print(f"[red]error:[/] cannot write {escape(str(out))}: {escape(str(exc))}")
        raise typer.Exit(2) from None
    console.print(f"[green]converted[/] {escape(str(file))} to {escape(str(out))}: {escape(what)}")
    for note in conversion.notes:
        console.print(f"[yellow]note:[/] {escape(note)}")


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
    from emowatch.rules.errors import RuleFileError
    from emowatch.rules.loader import load_ruleset, read_rule_file
    from emowatch.rules.seed_format import is_seed_text

    try:
        text = read_rule_file(file)
    except RuleFileError as exc:
        console.print(f"[red]{escape(str(exc))}[/]")
        console.print(f"[red]not published:[/] cannot read {escape(str(file))}")
        raise typer.Exit(1) from None
    if is_seed_text(text):
        console.print(f"[red]not published:[/] {escape(str(file))} is in the seed's format; convert it first "
                      f"(`emowatch rules convert {escape(str(file))} --out FILE.yaml`), review it and publish that")
        raise typer.Exit(1)
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
rules_app.command("evaluate")(rules_evaluate)
