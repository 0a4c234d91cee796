"""The default notification templates (Jinja2), Chinese and English, one body per text style.

Styles: ``text`` (log, email, webhook, alertmanager, apprise), ``markdown`` (wecom, dingtalk,
feishu) and ``slack`` (Slack mrkdwn). The title is one line for every kind. ``docs/notify.md``
lists the variables; a receiver's ``templates: {title, body}`` replaces these.
"""
from __future__ import annotations

__all__ = ["DEFAULT_BODIES", "DEFAULT_TITLES", "STYLE_BY_KIND"]

STYLE_BY_KIND: dict[str, str] = {
    "log": "text", "email": "text", "webhook": "text", "alertmanager": "text", "apprise": "text",
    "wecom": "markdown", "dingtalk": "markdown", "feishu": "markdown", "slack": "slack",
}

DEFAULT_TITLES: dict[str, str] = {
    "zh": (
        '{% if status == "RESOLVED" %}[已恢复] {{ first.headline }}'
        "{% else %}[{{ priority }}] {{ first.headline }} {{ first.pct }} 持续 {{ first.duration }}{% endif %}"
        " · call {{ first.call_id }} · {{ first.business_line_name }}"
        "{% if more %} (+{{ more }}){% endif %}"
        '{% if first.action == "REVIEW" %} · 需复核{% endif %}'
        "{% if repeat %} · 提醒 #{{ repeat }}{% endif %}"
    ),
    "en": (
        '{% if status == "RESOLVED" %}[RESOLVED] {{ first.headline }}'
        "{% else %}[{{ priority }}] {{ first.headline }} {{ first.pct }} for {{ first.duration }}{% endif %}"
        " · call {{ first.call_id }} · {{ first.business_line_name }}"
        "{% if more %} (+{{ more }}){% endif %}"
        '{% if first.action == "REVIEW" %} · review{% endif %}'
        "{% if repeat %} · reminder #{{ repeat }}{% endif %}"
    ),
}

_TEXT_ZH = """\
{{ "告警" if status == "FIRING" else "已恢复" }}：{{ alerts|length }} 条 · 接收方 {{ receiver }}\
{% if repeat %} · 提醒 #{{ repeat }}{% endif %}


{% for a in shown %}
{{ loop.index }}. [{{ a.priority }}]{% if a.resolved %} [已恢复]{% endif %} {{ a.headline }} \
{{ a.pct }}（阈值 {{ a.threshold_pct }}），持续 {{ a.duration }}
   call {{ a.call_id }} · {{ a.business_line_name }} · 通话内 {{ a.span }} · 规则 {{ a.rule_name }}\
{% if a.action == "REVIEW" %} · 需人工复核{% endif %}

{% if a.link %}
   {{ a.link }}
{% endif %}
{% endfor %}
{% if hidden %}
…… 另有 {{ hidden }} 条告警
{% endif %}
"""

_TEXT_EN = """\
{{ "FIRING" if status == "FIRING" else "RESOLVED" }}: {{ alerts|length }} alert{{ "s" if alerts|length > 1 }} \
· receiver {{ receiver }}{% if repeat %} · reminder #{{ repeat }}{% endif %}


{% for a in shown %}
{{ loop.index }}. [{{ a.priority }}]{% if a.resolved %} [RESOLVED]{% endif %} {{ a.headline }} \
{{ a.pct }} (threshold {{ a.threshold_pct }}), for {{ a.duration }}
   call {{ a.call_id }} · {{ a.business_line_name }} · at {{ a.span }} in the call · rule {{ a.rule_name }}\
{% if a.action == "REVIEW" %} · needs human review{% endif %}

{% if a.link %}
   {{ a.link }}
{% endif %}
{% endfor %}
{% if hidden %}
... and {{ hidden }} more
{% endif %}
"""

_MARKDOWN_ZH = """\
### {{ title }}
{% for a in shown %}
- **[{{ a.priority }}]**{% if a.resolved %} **已恢复**{% endif %} **{{ a.headline }} {{ a.pct }}**\
（阈值 {{ a.threshold_pct }}），持续 {{ a.duration }}
  call {{ a.call_id }} · {{ a.business_line_name }} · 通话内 {{ a.span }} · 规则 {{ a.rule_name }}\
{% if a.action == "REVIEW" %} · 需人工复核{% endif %}{% if a.link %} · [查看通话]({{ a.link }}){% endif %}

{% endfor %}
{% if hidden %}
…… 另有 {{ hidden }} 条告警
{% endif %}
"""

_MARKDOWN_EN = """\
### {{ title }}
{% for a in shown %}
- **[{{ a.priority }}]**{% if a.resolved %} **RESOLVED**{% endif %} **{{ a.headline }} {{ a.pct }}** \
(threshold {{ a.threshold_pct }}), for {{ a.duration }}
  call {{ a.call_id }} · {{ a.business_line_name }} · at {{ a.span }} · rule {{ a.rule_name }}\
{% if a.action == "REVIEW" %} · needs human review{% endif %}{% if a.link %} · [open call]({{ a.link }}){% endif %}

{% endfor %}
{% if hidden %}
... and {{ hidden }} more
{% endif %}
"""

_SLACK_ZH = """\
*{{ title }}*
{% for a in shown %}
• *[{{ a.priority }}]*{% if a.resolved %} *已恢复*{% endif %} *{{ a.headline }} {{ a.pct }}*\
（阈值 {{ a.threshold_pct }}），持续 {{ a.duration }}
   call {{ a.call_id }} · {{ a.business_line_name }} · 通话内 {{ a.span }} · 规则 {{ a.rule_name }}\
{% if a.action == "REVIEW" %} · 需人工复核{% endif %}{% if a.link %} · <{{ a.link }}|查看通话>{% endif %}

{% endfor %}
{% if hidden %}
…… 另有 {{ hidden }} 条告警
{% endif %}
"""

_SLACK_EN = """\
*{{ title }}*
{% for a in shown %}
• *[{{ a.priority }}]*{% if a.resolved %} *RESOLVED*{% endif %} *{{ a.headline }} {{ a.pct }}* \
(threshold {{ a.threshold_pct }}), for {{ a.duration }}
   call {{ a.call_id }} · {{ a.business_line_name }} · at {{ a.span }} · rule {{ a.rule_name }}\
{% if a.action == "REVIEW" %} · needs human review{% endif %}{% if a.link %} · <{{ a.link }}|open call>{% endif %}

{% endfor %}
{% if hidden %}
... and {{ hidden }} more
{% endif %}
"""

DEFAULT_BODIES: dict[str, dict[str, str]] = {
    "zh": {"text": _TEXT_ZH, "markdown": _MARKDOWN_ZH, "slack": _SLACK_ZH},
    "en": {"text": _TEXT_EN, "markdown": _MARKDOWN_EN, "slack": _SLACK_EN},
}
