from emowatch.streams.settings import settings_reference

lines=["# Configuration","",
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
"regenerate with `python bench/configuration_doc.py`); a test checks that it lists every setting.","",
"| variable | default | type |","|---|---|---|"]
bar = "\\|"
for n,d,t in settings_reference():
    lines.append(f"| `{n}` | `{d}` | {t.replace('|', bar)} |")
open("docs/configuration.md","w").write("\n".join(lines)+"\n")
