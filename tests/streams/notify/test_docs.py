"""docs/notify.md stays true: its example is the bundled config, its renderings and default titles are current."""
from __future__ import annotations

import re
from pathlib import Path

from emowatch.streams.notify.templates import render, sample_notification
from emowatch.streams.notify.templates_default import DEFAULT_TITLES

ROOT = Path(__file__).resolve().parents[3]
DOC = (ROOT / "docs" / "notify.md").read_text(encoding="utf-8")
NAMES = {"collections": {"zh": "催收线", "en": "collections"}}


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", DOC, re.S)


def test_the_full_example_is_the_bundled_config():
    assert blocks("yaml")[0] == (ROOT / "infra" / "notify" / "notify.yaml").read_text(encoding="utf-8")


def test_the_renderings_are_current():
    sample = sample_notification()
    texts = blocks("text")
    for language, shown in zip(("zh", "en"), texts):
        rendered = render(sample, "email", language, business_line_names=NAMES)
        assert shown == f"{rendered.title}\n{rendered.body}\n"
    assert blocks("markdown")[0] == render(sample, "wecom", "zh", business_line_names=NAMES).body + "\n"
    resolved = sample_notification("RESOLVED", n_alerts=1)
    for language in ("zh", "en"):
        assert f"`{render(resolved, 'log', language, business_line_names=NAMES).title}`" in DOC


def test_the_default_titles_are_shown():
    (shown,) = blocks("jinja")
    assert shown == f"{{# zh #}}\n{DEFAULT_TITLES['zh']}\n{{# en #}}\n{DEFAULT_TITLES['en']}\n"
