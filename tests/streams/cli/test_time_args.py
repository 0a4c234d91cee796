import pytest

from emowatch.streams.cli.time_args import format_ms, parse_time_ms

NOW = 1_738_317_600_000  # 2025-01-31T10:00:00Z


def test_accepted_forms():
    assert parse_time_ms("2025-01-31T10:00:00Z", now_ms=0) == NOW
    assert parse_time_ms("2025-01-31T18:00:00+08:00", now_ms=0) == NOW
    assert parse_time_ms("2025-01-31T10:00:00", now_ms=0) == NOW  # no zone: UTC, like Kafka's --to-datetime
    assert parse_time_ms("2025-01-31 10:00:00.250", now_ms=0) == NOW + 250
    assert parse_time_ms(str(NOW), now_ms=0) == NOW
    assert parse_time_ms("now", now_ms=NOW) == NOW
    assert parse_time_ms("-1h30m", now_ms=NOW) == NOW - 5_400_000
    assert format_ms(NOW + 5) == "2025-01-31 10:00:00.005Z"


@pytest.mark.parametrize("bad", ["yesterday", "-", "-2x", "2025-13-01", ""])
def test_other_text_is_refused_with_the_accepted_forms(bad):
    with pytest.raises(ValueError, match="ISO-8601"):
        parse_time_ms(bad, now_ms=NOW)


def test_since_takes_a_duration_ago_with_or_without_the_minus():
    from emowatch.streams.cli.time_args import parse_since_ms

    assert parse_since_ms("1d", now_ms=NOW) == NOW - 86_400_000
    assert parse_since_ms("1d12h", now_ms=NOW) == NOW - 86_400_000 - 12 * 3_600_000
    assert parse_since_ms("2h", now_ms=NOW) == parse_since_ms("-2h", now_ms=NOW) == NOW - 7_200_000
    assert parse_since_ms("30m", now_ms=NOW) == NOW - 1_800_000
    assert parse_since_ms("2025-01-31T18:00:00+08:00", now_ms=0) == NOW
    assert parse_since_ms(str(NOW), now_ms=0) == NOW
    for bad in ("yesterday", "1x", "1d2x", ""):
        with pytest.raises(ValueError, match="duration ago"):
            parse_since_ms(bad, now_ms=NOW)
