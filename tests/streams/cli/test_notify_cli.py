"""`emowatch notify check`, and the argument checks of `silence` / `alert ack` that run before any
broker is contacted (no broker here: the publish functions are replaced by a recorder)."""
from __future__ import annotations

import shutil

import pytest
from typer.testing import CliRunner

from emowatch.streams.cli.main import app
from emowatch.streams.cli.silence import canonical_matchers, end_ms
from emowatch.streams.kafka import notify_control
from emowatch.streams.notify.errors import MatcherError
from emowatch.streams.resources import notify_config

ENV = {"EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:9"}
NOW = 1_704_164_645_678


@pytest.fixture(autouse=True)
def published(monkeypatch) -> list[dict]:
    """What the commands would publish."""
    out: list[dict] = []

    def record(_kafka, rec, **_kw):
        out.append(dict(rec))
        return notify_control.Published("t", 0, len(out) - 1, "k")

    monkeypatch.setattr(notify_control, "publish_silence", record)
    monkeypatch.setattr(notify_control, "publish_ack", record)
    return out


def cli(*args: str) -> tuple[int, str]:
    res = CliRunner().invoke(app, list(args), env=ENV, catch_exceptions=False)
    return res.exit_code, res.output


def test_notify_check_accepts_the_bundled_config():
    assert cli("notify", "check", str(notify_config())) == (0, "ok\n")


def test_notify_check_reports_file_and_line(tmp_path):
    bad = tmp_path / "notify.yaml"
    text = notify_config().read_text().replace("group_wait: 5s", "group_wait: soon")
    bad.write_text(text)
    line = text.splitlines().index("  group_wait: soon") + 1
    code, out = cli("notify", "check", str(bad))
    assert code == 1 and "ok" not in out.split()
    assert f"{bad}:{line}: " in out, out


def test_notify_check_with_secrets_names_missing_ones_and_never_prints_values(tmp_path):
    config = tmp_path / "notify.yaml"
    shutil.copy(notify_config(), config)
    secrets = tmp_path / "secrets.yaml"
    secrets.write_text("oncall_hmac: s3cr3t-value-1\nwecom_collections_key: s3cr3t-value-2\n")
    code, out = cli("notify", "check", str(config), "--secrets", str(secrets))
    assert code == 1 and "smtp_password" in out and "s3cr3t" not in out
    code, out = cli("notify", "check", str(config), "--secrets", str(tmp_path / "missing.yaml"))
    assert code == 2 and "cannot read secret file" in out


@pytest.mark.parametrize(("given", "canonical"), [
    ("business_line=collections", 'business_line="collections"'),
    ('business_line="collections"', 'business_line="collections"'),
    ("priority=~HIGH|CRITICAL", 'priority=~"HIGH|CRITICAL"'),
    ("priority!~'LOW'", "priority!~\"'LOW'\""),
    ('team!="a b"', 'team!="a b"'),
])
def test_matchers_with_or_without_quotes(given, canonical):
    assert canonical_matchers([given]) == [canonical]


def test_bad_matcher_raises():
    with pytest.raises(MatcherError):
        canonical_matchers(["priority=~(HIGH"])


def test_end_of_a_silence():
    assert end_ms("1h", None, NOW) == NOW + 3_600_000
    assert end_ms(None, "2100-01-01T00:00:00Z", NOW) == 4_102_444_800_000
    for for_, until, message in [(None, None, "exactly one"), ("1h", "2100-01-01T00:00:00Z", "exactly one"),
                                 ("0", None, "longer than 0"), ("soon", None, "invalid duration"),
                                 (None, "2100-01-01T00:00:00", "time zone"), (None, "2000-01-01T00:00:00Z", "past"),
                                 (None, "tomorrow", "ISO-8601")]:
        with pytest.raises(ValueError, match=message):
            end_ms(for_, until, NOW)


@pytest.mark.parametrize(("args", "reason"), [
    (["--match", "priority=~(HIGH", "--for", "1h"], "invalid regex"),
    (["--match", 'team=~".*"', "--for", "1h"], "also match alerts without"),
    (["--match", "team=a"], "exactly one of --for"),
    (["--match", "team=a", "--for", "1h", "--until", "2100-01-01T00:00:00Z"], "exactly one of --for"),
    (["--match", "team=a", "--until", "2100-01-01T00:00:00"], "time zone"),
    (["--match", "no operator", "--for", "1h"], "invalid matcher"),
])
def test_silence_add_refuses_bad_arguments_before_publishing(args, reason, published):
    code, out = cli("silence", "add", *args, "--comment", "c", "--author", "li")
    assert code == 2, out
    assert reason in out and "nothing published" in out and published == []


def test_silence_add_needs_author_and_comment(published):
    code, out = cli("silence", "add", "--match", "team=a", "--for", "1h", "--comment", "c", "--author", " ")
    assert code == 2 and "author" in out
    code, _ = cli("silence", "add", "--match", "team=a", "--for", "1h", "--author", "li")
    assert code == 2  # typer: missing --comment
    assert published == []


def test_valid_arguments_publish_a_canonical_silence_and_print_its_id(published):
    code, out = cli("silence", "add", "-m", "business_line=collections", "-m", "priority=~HIGH|CRITICAL",
                    "--for", "1h", "--comment", "dialler maintenance", "--author", "li")
    assert code == 0, out
    (rec,) = published
    assert out == rec["id"] + "\n"
    assert rec["matchers"] == ['business_line="collections"', 'priority=~"HIGH|CRITICAL"']
    assert rec["ends_at"] - rec["starts_at"] == 3_600_000 and rec["expired_at"] is None
    assert (rec["created_by"], rec["comment"]) == ("li", "dialler maintenance")


def test_alert_ack_arguments(published):
    code, out = cli("alert", "ack", "a1", "--by", "")
    assert code == 2 and "nothing published" in out and published == []
    code, out = cli("alert", "ack", "a1", "--by", "li", "--call-id", "c-1", "-c", "calling back")
    assert code == 0 and "acknowledged a1 by li" in out
    assert [(r["alert_id"], r["by"], r["call_id"], r["comment"]) for r in published] == [
        ("a1", "li", "c-1", "calling back")]


def test_silence_list_format_is_checked():
    code, out = cli("silence", "list", "--format", "yaml")
    assert code == 2 and "use table or json" in out
