"""`emowatch silence add|list|expire`: operator silences on the compacted silences topic (like amtool).

Matchers (``--match``, repeatable, all must match): ``name=value``, ``name!=value``, ``name=~regex``,
``name!~regex``, the value bare or double-quoted; stored in the canonical quoted form.
Exit codes: 0 = done; 2 = invalid arguments (nothing published) or bad settings; 3 = the broker did
not acknowledge / could not be read. Silence ids are random UUIDs (uuid4, as in Alertmanager):
two people silencing the same labels get two silences, each expirable on its own.
"""
from __future__ import annotations

import json
from datetime import UTC, datetime

import typer
from rich.markup import escape
from rich.table import Table

from emowatch.streams.cli.common import console
from emowatch.streams.cli.common import now_ms as _now_ms
from emowatch.streams.cli.common import settings_or_exit as _settings
from emowatch.streams.cli.notify import say

silence_app = typer.Typer(no_args_is_help=True, help="Add, list and expire notification silences.")

BROKER_FAILED = 3


def _invalid(reason: str) -> typer.Exit:
    say(f"[red]invalid:[/] {escape(reason)}; nothing published")
    return typer.Exit(2)


def canonical_matchers(texts: list[str]) -> list[str]:
    """Parse ``--match`` values; the canonical ``name op "value"`` strings (MatcherError otherwise)."""
    from emowatch.streams.notify.matchers import parse_matcher

    return [str(parse_matcher(t)) for t in texts]


def end_ms(for_: str | None, until: str | None, now_ms: int) -> int:
    """End of a new silence from ``--for DURATION`` or ``--until ISO-8601 with a zone`` (ValueError)."""
    from emowatch.rules.durations import parse_duration_ms

    if (for_ is None) == (until is None):
        raise ValueError("give exactly one of --for DURATION and --until TIME")
    if for_ is not None:
        ms = parse_duration_ms(for_)
        if ms <= 0:
            raise ValueError(f"--for {for_!r} must be longer than 0")
        return now_ms + ms
    try:
        when = datetime.fromisoformat(until)
    except ValueError:
        raise ValueError(f"--until {until!r} is not an ISO-8601 time such as 2025-01-31T18:00:00+08:00") from None
    if when.tzinfo is None:
        raise ValueError(f"--until {until!r} needs a time zone (Z or +08:00)")
    ms = int(when.timestamp() * 1000)
    if ms <= now_ms:
        raise ValueError(f"--until {until!r} is in the past")
    return ms


def _broker_error(exc: Exception) -> typer.Exit:
    from emowatch.topics.security import redact_url

    say(f"[red]error:[/] {escape(redact_url(str(exc)))}")
    return typer.Exit(BROKER_FAILED)


@silence_app.command("add")
def silence_add(
    match: list[str] = typer.Option(..., "--match", "-m", help="Matcher, repeatable: k=v, k!=v, k=~re, k!~re."),
    for_: str | None = typer.Option(None, "--for", help="Duration from now: 30m, 1h, 1h30m."),
    until: str | None = typer.Option(None, "--until", help="End time, ISO-8601 with a zone."),
    comment: str = typer.Option(..., "--comment", "-c", help="Why."),
    author: str = typer.Option(..., "--author", "-a", help="Who."),
) -> None:
    """Silence alerts matching every --match, from now until --for/--until; prints the new id."""
    from emowatch.streams.notify.errors import MatcherError
    from emowatch.streams.notify.records import new_silence_record

    now = _now_ms()
    try:
        record = new_silence_record(canonical_matchers(match), now, end_ms(for_, until, now), created_by=author,
                                    comment=comment, now_ms=now)
    except (MatcherError, ValueError) as exc:
        raise _invalid(str(exc)) from None
    from emowatch.streams.kafka.notify_control import ControlPublishError, publish_silence

    s = _settings()
    try:
        publish_silence(s.kafka, record)
    except ControlPublishError as exc:
        raise _broker_error(exc) from None
    say(escape(record["id"]))


def _read(logical: str) -> dict[str, dict]:
    from emowatch.streams.kafka.notify_control import read_current

    s = _settings()
    try:
        return read_current(s.kafka, logical)
    except Exception as exc:  # noqa: BLE001 - ControlReadError, any client failure: report, exit 3
        raise _broker_error(exc) from None


def _iso(ms: int | None) -> str:
    return "" if ms is None else datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


@silence_app.command("list")
def silence_list(
    expired: bool = typer.Option(False, "--expired", help="List expired silences (ended or expired) instead."),
    fmt: str = typer.Option("table", "--format", help="table or json."),
) -> None:
    """List pending and active silences (or, with --expired, the expired ones), newest first."""
    from emowatch.streams.notify.records import silence_state

    if fmt not in ("table", "json"):
        raise _invalid(f"--format {fmt!r}: use table or json")
    now = _now_ms()
    rows = []
    for record in _read("silences").values():
        state = silence_state(record, now)
        if (state == "expired") == expired:
            rows.append({**record, "state": state})
    rows.sort(key=lambda r: r["created_at"], reverse=True)
    if fmt == "json":
        say(escape(json.dumps(rows, ensure_ascii=False)))
        return
    table = Table(title="expired silences" if expired else "silences")
    for column in ("id", "state", "matchers", "starts", "ends", "created by", "comment", "expired by")[
            :8 if expired else 7]:
        table.add_column(column, no_wrap=column not in ("matchers", "comment"))
    for r in rows:
        cells = [r["id"], r["state"], " ".join(r["matchers"]), _iso(r["starts_at"]),
                 _iso(min(r["ends_at"], r["expired_at"] or r["ends_at"])), r["created_by"], r["comment"]]
        if expired:
            cells.append(r["expired_by"] or "")
        table.add_row(*(escape(c) for c in cells))
    console.print(table)


@silence_app.command("expire")
def silence_expire(
    silence_id: str = typer.Argument(..., help="Id printed by `silence add`."),
    author: str = typer.Option(..., "--author", "-a", help="Who."),
) -> None:
    """End a silence now (re-published with expired_at; kept in the topic's history)."""
    from emowatch.streams.kafka.notify_control import ControlPublishError, publish_silence
    from emowatch.streams.notify.errors import MatcherError
    from emowatch.streams.notify.records import expired_silence_record

    if not author.strip():
        raise _invalid("--author must not be empty")
    current = _read("silences").get(silence_id)
    if current is None:
        raise _invalid(f"no silence with id {silence_id!r}")
    try:
        record = expired_silence_record(current, by=author, now_ms=_now_ms())
    except MatcherError as exc:
        raise _invalid(str(exc)) from None
    try:
        publish_silence(_settings().kafka, record)
    except ControlPublishError as exc:
        raise _broker_error(exc) from None
    say(f"expired {escape(silence_id)}")
