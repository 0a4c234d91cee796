"""Generate docs/configuration.md from the settings model: ``.venv/bin/python docs/gen_configuration.py``.

``tests/streams/test_settings.py`` checks that the committed file equals :func:`render`.
"""
from pathlib import Path

from emowatch.streams.settings import settings_reference

OUT = Path(__file__).with_name("configuration.md")


def render() -> str:
    lines = [
    "# Configuration", "",
    "Every emowatch process reads one frozen settings model from `EMOWATCH_*` environment variables,",
    "nested with `__` (`EMOWATCH_KAFKA__BOOTSTRAP_SERVERS`). The loader (`streams/settings.py`) reads the",
    "variables explicitly: an unknown `EMOWATCH_*` name or an invalid value stops the process at start-up",
    "with the variable's name, e.g. "
    "`invalid configuration: EMOWATCH_INFER__MAX_BATCH: Input should be greater than or equal to 1`.",
    "Secrets (`*_PASSWORD`) are `SecretStr`: they print as `**********` and are never logged.","",
    "Sections: `KAFKA` (cluster, security, topic naming, partitions), "
    "`MODEL` (which emotion2vec checkpoint and where it runs),",
    "`INFER` (inference agent), `RULES` (rules workers), `SINK` (ClickHouse sink).",
    "`EMOWATCH_KAFKA__TOPIC_PREFIX` namespaces topics *and* consumer groups (tenants, tests).","",
    "This table is generated from the settings model (`emowatch.streams.settings.settings_reference()`;",
    "regenerate with `python docs/gen_configuration.py`); a test checks that it is up to date.","",
    "| variable | default | type |","|---|---|---|"]
    bar = "\\|"
    for n, d, t in settings_reference():
        lines.append(f"| `{n}` | `{d}` | {t.replace('|', bar)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    OUT.write_text(render())
