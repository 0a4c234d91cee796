"""Templates: every integration kind in both languages, FIRING and RESOLVED, overrides, sandbox."""
from __future__ import annotations

import dataclasses

import pytest

from emowatch.streams.notify.errors import TemplateRenderError
from emowatch.streams.notify.grouping import Dispatcher
from emowatch.streams.notify.model import Rendered
from emowatch.streams.notify.templates import (
    EMOTION_NAMES,
    KINDS,
    MAX_LISTED,
    check_template,
    render,
    render_for,
    sample_notification,
)
from emowatch.topics.model_io import EMOTIONS

NAMES = {"collections": {"zh": "催收线", "en": "collections"}}
LINK = "http://localhost:8080/calls/12345"


def test_every_kind_is_known():
    assert set(KINDS) == {"log", "webhook", "email", "wecom", "dingtalk", "feishu", "slack", "alertmanager", "apprise"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("language", ["zh", "en"])
@pytest.mark.parametrize("status", ["FIRING", "RESOLVED"])
def test_every_kind_renders_in_both_languages(kind, language, status):
    rendered = render(sample_notification(status), kind, language, business_line_names=NAMES)
    assert isinstance(rendered, Rendered) and "\n" not in rendered.title and rendered.body
    assert "12345" in rendered.title and "High customer anger" in rendered.body and LINK in rendered.body
    words = {"zh": ("客户愤怒", "催收线", "已恢复"), "en": ("customer angry", "collections", "RESOLVED")}[language]
    assert all(w in rendered.body for w in words)  # the second sample alert is resolved
    assert (("已恢复" if language == "zh" else "RESOLVED") in rendered.title) is (status == "RESOLVED")
    if kind in ("wecom", "dingtalk", "feishu"):
        assert rendered.body.startswith("### ") and f"]({LINK})" in rendered.body
    elif kind == "slack":
        assert rendered.body.startswith("*") and f"<{LINK}|" in rendered.body
    else:
        assert "**" not in rendered.body and "###" not in rendered.body


def test_the_titles_of_the_brief():
    one = sample_notification(n_alerts=1)
    zh = render(one, "log", "zh", business_line_names=NAMES)
    assert zh.title == "[HIGH] 客户愤怒 92% 持续 3 s · call 12345 · 催收线"
    assert render(one, "email", "en").title == "[HIGH] customer angry 92% for 3 s · call 12345 · collections"
    resolved = sample_notification("RESOLVED", n_alerts=1)
    assert render(resolved, "wecom", "zh").title == "[已恢复] 客户愤怒 · call 12345 · collections"
    more = dataclasses.replace(sample_notification(n_alerts=3), repeat=2)
    assert render(more, "slack", "en").title.endswith(" (+2) · reminder #2")


def test_text_body_lists_every_alert_with_value_threshold_offset_and_link():
    body = render(sample_notification(), "email", "en").body.splitlines()
    assert body == [
        "FIRING: 2 alerts · receiver oncall",
        "",
        "1. [HIGH] customer angry 92% (threshold 75%), for 3 s",
        "   call 12345 · collections · at 0:12–0:15 in the call · rule High customer anger",
        f"   {LINK}",
        "2. [HIGH] [RESOLVED] customer angry 92% (threshold 75%), for 3 s",
        "   call 12345 · collections · at 0:32–0:35 in the call · rule High customer anger",
        f"   {LINK}",
    ]


def test_emotions_roles_durations_and_review(make_alert):
    assert set(EMOTION_NAMES["zh"]) == set(EMOTIONS) == set(EMOTION_NAMES["en"])
    record = make_alert(emotions=["sad", "neutral"], role="AGENT", started_ms=0, fired_ms=95_500,
                        action="REVIEW", value=0.813, labels={})
    n = dataclasses.replace(sample_notification(), alerts=(record,), console_url=None)
    zh = render(n, "log", "zh")
    assert zh.title == "[HIGH] 坐席悲伤/中性 81% 持续 1 min 35 s · call 12345 · collections · 需复核"
    assert "需人工复核" in zh.body and "规则 angry-sustained" in zh.body and "http" not in zh.body
    en = render(n, "log", "en")
    assert en.title == "[HIGH] agent sad/neutral 81% for 1 min 35 s · call 12345 · collections · review"
    n2 = dataclasses.replace(n, alerts=(make_alert(started_ms=1000, fired_ms=3500),))
    assert "for 2.5 s" in render(n2, "log", "en").title


def test_long_groups_are_truncated():
    n = sample_notification(n_alerts=MAX_LISTED + 5)
    assert render(n, "wecom", "zh").body.endswith("…… 另有 5 条告警")
    assert render(n, "log", "en").body.endswith("... and 5 more")


def test_overrides_replace_title_and_body():
    overrides = {"title": "{{ status }} {{ alerts|length }} {{ first.alert_id }}",
                 "body": "{% for a in alerts %}{{ a.alert_id }}={{ a.status }};{% endfor %}{{ kind }}/{{ language }}"}
    rendered = render(sample_notification(), "dingtalk", "en", overrides)
    assert rendered == Rendered("FIRING 2 sample0", "sample0=FIRING;sample1=RESOLVED;dingtalk/en")
    assert render(sample_notification(), "log", "zh", {"title": "T"}).body.startswith("告警：2 条")


def test_render_for_uses_the_receivers_language_and_templates(make_config, make_alert, t0):
    config = make_config("""
        global: {console_url: 'http://console:8080/', business_line_names: {collections: {zh: 催收线}}}
        route: {receiver: cn, group_wait: 0s, routes: [{matchers: ['business_line="x"'], receiver: en}]}
        receivers:
          - {name: cn, log: {}}
          - {name: en, language: en, log: {}, templates: {title: 'EN {{ first.call_id }}'}}
    """)
    d = Dispatcher(config)
    d.add(make_alert("a1"), t0)
    d.add(make_alert("a2", business_line="x", call_id="9"), t0)
    cn, en = sorted(d.due(t0), key=lambda n: n.receiver)
    assert render_for(config, cn, "wecom").title == "[HIGH] 客户愤怒 92% 持续 3 s · call 12345 · 催收线"
    assert "http://console:8080/calls/12345" in render_for(config, cn, "wecom").body
    assert render_for(config, en, "email").title == "EN 9"
    assert render_for(config, en, "email").body.startswith("FIRING: 1 alert · receiver en")


@pytest.mark.parametrize("source, reason", [
    ("{{ nope }}", "'nope' is undefined"),
    ("{{ first.nope }}", "has no attribute 'nope'"),
    ("{% if %}", "template syntax error at template line 1"),
    ("{{ alerts.__class__.__mro__ }}", "template error"),
    ("{{ ''.__class__.__subclasses__() }}", "template error"),
    ("{% do alerts.append(1) %}", "template syntax error"),
    ("{{ alerts.append(1) }}", "template error"),  # immutable sandbox
])
def test_bad_templates_are_errors(source, reason):
    problem = check_template(source)
    assert problem is not None and reason in problem
    with pytest.raises(TemplateRenderError):
        render(sample_notification(), "log", "en", {"body": source})


def test_bad_arguments():
    with pytest.raises(TemplateRenderError):
        render(sample_notification(), "sms", "en")
    with pytest.raises(TemplateRenderError):
        render(sample_notification(), "log", "fr")
    with pytest.raises(TemplateRenderError):
        render(dataclasses.replace(sample_notification(), alerts=()), "log", "en")
    assert check_template("{{ first.headline }} {{ title }} {{ group_labels.call_id }}") is None
