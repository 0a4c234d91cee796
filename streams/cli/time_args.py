"""Points in time given on the command line (``--from``, ``--to``, ``--to-datetime``). Pure."""
from __future__ import annotations

import re
from datetime import UTC, datetime

from emowatch.rules.durations import parse_duration_ms

_AGO = re.compile(r"^-(.+)$")


def parse_time_ms(text: str, *, now_ms: int) -> int:
    """Epoch milliseconds of ``text``: an ISO-8601 time (``2025-01-31T18:00:00+08:00``; without a zone it
    is UTC, like Kafka's ``--to-datetime``), epoch milliseconds (``1738317600000``), ``now``, or a
    duration ago (``-2h``, ``-1h30m``, ``-15m``). Raises ValueError naming the accepted forms."""
    t = text.strip()
    if t == "now":
        return now_ms
    if t.isdigit():
        return int(t)
    ago = _AGO.match(t)
    if ago:
        try:
            return now_ms - parse_duration_ms(ago.group(1))
        except ValueError:
            pass
    else:
        try:
            when = datetime.fromisoformat(t.replace("Z", "+00:00") if t.endswith("Z") else t)
        except ValueError:
            pass
        else:
            if when.tzinfo is None:
                when = when.replace(tzinfo=UTC)
            return int(when.timestamp() * 1000)
    raise ValueError(f"{text!r} is not a time: use ISO-8601 (2025-01-31T18:00:00+08:00, UTC without a zone), "
                     "epoch milliseconds, 'now', or a duration ago such as -2h or -1h30m")


def format_ms(ms: int) -> str:
    """``2025-01-31 10:00:00.000Z`` for an epoch-millisecond time."""
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"


_DAYS = re.compile(r"^-?(\d+)d(.*)$")


def parse_since_ms(text: str, *, now_ms: int) -> int:
    """Epoch milliseconds of a ``--since``/``--until``: a duration ago with or without the minus (``1d``,
    ``2h``, ``30m``, ``1d12h``, ``-2h``), or any form of :func:`parse_time_ms`. Raises ValueError."""
    t = text.strip()
    days = _DAYS.match(t)
    try:
        if days:
            return now_ms - int(days.group(1)) * 86_400_000 - (parse_duration_ms(days.group(2)) if days.group(2)
                                                                 else 0)
        if t and not t.startswith("-") and not t.isdigit() and t != "now":
            return now_ms - parse_duration_ms(t)
    except ValueError:
        pass
    try:
        return parse_time_ms(t, now_ms=now_ms)
    except ValueError:
        raise ValueError(f"{text!r} is not a time: use a duration ago (1d, 2h, 30m, 1d12h), ISO-8601 "
                         "(2025-01-31T18:00:00+08:00, UTC without a zone), epoch milliseconds or 'now'") from None
