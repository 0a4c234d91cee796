"""Loading the notifier configuration: the bundled examples, defaults, secrets, and errors as file:line."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from emowatch.streams.notify.config import host_allowed
from emowatch.streams.notify.config_loader import check_config, load_config, parse_config
from emowatch.streams.notify.errors import NotifyConfigError, SecretError
from emowatch.streams.notify.secret_store import SecretStore

INFRA = Path(__file__).resolve().parents[3] / "infra" / "notify"
EXAMPLE_SECRETS = {n: f"value-of-{n}" for n in ("oncall_hmac", "wecom_collections_key", "smtp_password",
                                                  "dingtalk_token", "dingtalk_sign", "review_hmac",
                                                  "feishu_vip_token")}
MINIMAL = """
route: {receiver: log}
receivers: [{name: log, log: {}}]
"""


def errors_of(text: str, secrets=None, variables=None) -> list[str]:
    with pytest.raises(NotifyConfigError) as info:
        parse_config(textwrap.dedent(text), "n.yaml", secrets=secrets, variables=variables)
    return [str(e) for e in info.value.errors]


def test_bundled_example_loads_with_its_secrets():
    assert check_config(INFRA / "notify.yaml") == []
    config = load_config(INFRA / "notify.yaml", secrets=EXAMPLE_SECRETS)
    hook = config.receiver("collections-oncall").webhook[0]
    assert hook.hmac_key.get_secret_value() == "value-of-oncall_hmac"
    assert (hook.timeout, hook.max_attempts, hook.format) == (5000, 5, "emowatch")
    assert config.route.routes[0].continue_ is True
    assert config.language_for("qa-review") == "en" and config.language_for("log") == "zh"
    assert config.templates_for("vip-desk") == {"title": "[VIP] {{ first.headline }} {{ first.pct }} · call "
                                                         "{{ first.call_id }}"}
    assert len(config.receiver("qa-review").webhook) == 2  # a list of integrations


def test_bundled_demo_config_takes_the_port_as_a_variable():
    assert check_config(INFRA / "demo.yaml") == []
    config = load_config(INFRA / "demo.yaml", secrets={"demo_hmac": "k"}, variables={"NOTIFY_DEMO_PORT": "43210"})
    (hook,) = config.receiver("demo").webhook
    assert hook.url == "http://127.0.0.1:43210/hook" and hook.hmac_key.get_secret_value() == "k"
    default = load_config(INFRA / "demo.yaml", secrets={"demo_hmac": "k"})
    assert default.receiver("demo").webhook[0].url == "http://127.0.0.1:9099/hook"


def test_example_files_are_package_data():
    text = (Path(__file__).resolve().parents[3] / "pyproject.toml").read_text()
    assert '"notify/*.yaml"' in text


def test_defaults():
    config = parse_config(MINIMAL)
    assert config.global_.language == "zh" and config.global_.webhook_allowed_hosts == []
    assert config.send_resolved("log") is True
    both = parse_config("""
route: {receiver: r}
global: {webhook_allowed_hosts: [h.example.com]}
receivers:
  - name: r
    email: {to: a@example.com, from: b@example.com, smarthost: 'smtp.example.com:25', starttls: false}
  - name: w
    webhook: {url: 'https://h.example.com/x'}
  - name: q
    email: {to: [a@example.com], from: b@example.com, smarthost: 'smtp.example.com:25', send_resolved: true}
""")
    email = both.receiver("r").email[0]
    assert email.to == ["a@example.com"] and email.send_resolved is False and email.timeout == 10_000
    assert both.send_resolved("r") is False and both.send_resolved("w") is True and both.send_resolved("q") is True


def test_unknown_receiver_is_reported_at_its_line():
    problems = errors_of("""
        route:
          receiver: log
          routes:
            - matchers: ['priority="HIGH"']
              receiver: oncal
        receivers:
          - name: log
            log: {}
    """)
    assert problems == ["n.yaml:6: route.routes[0].receiver: unknown receiver 'oncal' (defined: log)"]


def test_bad_regex_is_reported_at_its_line():
    (problem,) = errors_of("""
        route:
          receiver: log
          routes:
            - receiver: log
              matchers:
                - 'business_line="x"'
                - 'priority=~"HIGH|("'
        receivers: [{name: log, log: {}}]
    """)
    assert problem.startswith("n.yaml:8: route.routes[0].matchers[1]: invalid regex in matcher")


def test_host_not_allowed():
    problems = errors_of("""
        global:
          webhook_allowed_hosts: [127.0.0.1, '*.example.com']
        route: {receiver: r}
        receivers:
          - name: r
            webhook:
              - url: https://a.example.com/ok
              - url: https://evil.example.org/hook
            wecom: {key: {secret: k}}
    """, secrets={"k": "v"})
    assert problems == [
        "n.yaml:9: receivers[0].webhook[1].url: https://evil.example.org/hook is not on global.webhook_allowed_hosts "
        "(127.0.0.1, *.example.com); add the host or a *.domain pattern",
        "n.yaml:10: receivers[0].wecom: host qyapi.weixin.qq.com is not on global.webhook_allowed_hosts "
        "(127.0.0.1, *.example.com); add the host or a *.domain pattern",
    ]


def test_missing_secret_names_the_secret_never_a_value():
    text = """
        global: {webhook_allowed_hosts: [hooks.slack.com]}
        route: {receiver: r}
        receivers:
          - name: r
            webhook: {url: 'https://hooks.slack.com/x', hmac_key: {secret: hook_key}}
            slack: {url: {secret: slack_url}}
    """
    problems = errors_of(text, secrets={"hook_key": "TOP-SECRET"})
    assert problems == [
        "n.yaml:7: receivers[0].slack.url.secret: secret 'slack_url' is not defined in the secret store"]
    assert "TOP-SECRET" not in " ".join(problems)
    # once resolved, the slack URL's host is checked like a static URL
    problems = errors_of(text, secrets={"hook_key": "x", "slack_url": "https://evil.example.org/s"})
    assert problems == [
        "n.yaml:7: receivers[0].slack.url: host evil.example.org is not on global.webhook_allowed_hosts "
        "(hooks.slack.com); add the host or a *.domain pattern"]
    ok = parse_config(textwrap.dedent(text), secrets={"hook_key": "x", "slack_url": "https://hooks.slack.com/T/B"})
    assert ok.receiver("r").slack[0].url.get_secret_value() == "https://hooks.slack.com/T/B"


def test_all_problems_are_listed_in_line_order():
    problems = errors_of("""
        route:
          receiver: nobody
          group_wait: soon
          routes:
            - {receiver: log, mute_time_intervals: [never-defined]}
        receivers:
          - {name: log, log: {}}
          - {name: log, log: {}}
          - {name: x, webhook: {url: 'ftp://x'}, colour: red}
        inhibit_rules: [{source_matchers: ['a="b"']}]
    """)
    assert problems[0].startswith("n.yaml:4: route.group_wait: invalid duration 'soon'")
    assert problems[1].startswith("n.yaml:10: receivers[2].webhook.url: String should match pattern")
    assert problems[2] == "n.yaml:10: unknown key 'colour' in receivers[2]"
    problems = errors_of("""
        route:
          receiver: nobody
          routes:
            - {receiver: log, mute_time_intervals: [never-defined]}
        receivers:
          - {name: log, log: {}}
          - {name: log, log: {}}
        inhibit_rules: [{source_matchers: ['a="b"']}]
    """)
    assert problems == [
        "n.yaml:3: route.receiver: unknown receiver 'nobody' (defined: log)",
        "n.yaml:5: route.routes[0].mute_time_intervals[0]: undefined time interval 'never-defined' (defined: none)",
        "n.yaml:8: receivers[1].name: duplicate receiver name 'log'",
        "n.yaml:9: inhibit_rules: not supported by the notifier: inhibition is done upstream by the rules engine "
        "('inhibit:' in the rule files, docs/rules.md)",
    ]


@pytest.mark.parametrize("snippet, expected", [
    ("route: {receiver: log, matchers: ['a=\"b\"']}", "n.yaml:1: route.matchers: the root route matches every"),
    ("route: {receiver: log, repeat_interval: 10s, group_interval: 1m}", "n.yaml:1: route: repeat_interval (10000 ms)"),
    ("route: {receiver: log, group_by: [call_id, '...']}", "n.yaml:1: route.group_by: '...' (group by every label)"),
    ("route: {routes: [{receiver: log}]}", "n.yaml:1: route: the root route needs a 'receiver'"),
    ("route: {receiver: log, group_interval: 2}", "n.yaml:1: route.group_interval: invalid duration 2"),
    ("route: {receiver: log}\nreceivers: []", "n.yaml:2: receivers: List should have at least 1 item"),
    ("route: {receiver: log, continue: true}", "n.yaml:1: route.continue: the root route matches every alert"),
])
def test_route_checks(snippet, expected):
    text = snippet if "receivers" in snippet else snippet + "\nreceivers: [{name: log, log: {}}]"
    assert errors_of(text)[0].startswith(expected)


def test_yaml_errors_and_non_mappings():
    assert errors_of("route: [")[0].startswith("n.yaml:2: invalid YAML")
    assert errors_of("- a")[0] == ("n.yaml:1: a notifier config must be a YAML mapping with 'route' and 'receivers'")
    assert errors_of(MINIMAL + "route: {receiver: log}\n")[0].startswith("n.yaml:4: duplicate key 'route'")


def test_variables_are_substituted_in_strings_only_from_the_caller():
    text = """
        global: {webhook_allowed_hosts: [127.0.0.1], console_url: '${CONSOLE}'}
        route: {receiver: r}
        receivers: [{name: r, webhook: {url: 'http://127.0.0.1:${PORT}/hook'}}]
    """
    assert errors_of(text, variables={"PORT": "1"}) == [
        "n.yaml:2: global.console_url: variable 'CONSOLE' is not set (write ${CONSOLE:-default} for a default)"]
    config = parse_config(textwrap.dedent(text), variables={"PORT": "8123", "CONSOLE": "http://c:1/"})
    assert config.receiver("r").webhook[0].url == "http://127.0.0.1:8123/hook"
    assert config.global_.console_url == "http://c:1"


def test_bad_template_override_is_a_config_error():
    (problem,) = errors_of("""
        route: {receiver: r}
        receivers:
          - name: r
            log: {}
            templates: {title: '{{ first.nope }}', body: '{{ alerts|length }} alerts'}
    """)
    assert problem.startswith("n.yaml:6: receivers[0].templates.title: template error:") and "nope" in problem
    assert errors_of("""
        route: {receiver: r}
        receivers: [{name: r, log: {}, templates: {body: '{% for %}'}}]
    """)[0].startswith("n.yaml:3: receivers[0].templates.body: template syntax error at template line 1")


def test_check_config_reports_unreadable_files_and_resolves_secrets_only_when_given(tmp_path):
    assert check_config(tmp_path / "missing.yaml")[0].startswith(f"{tmp_path / 'missing.yaml'}:0: cannot read")
    path = tmp_path / "n.yaml"
    path.write_text("route: {receiver: log}\nreceivers:\n  - {name: log, log: {}}\n"
                    "  - {name: w, wecom: {key: {secret: wk}}}\n"
                    "global: {webhook_allowed_hosts: [qyapi.weixin.qq.com]}\n")
    assert check_config(path) == []
    assert check_config(path, secrets=SecretStore()) == [
        f"{path}:4: receivers[1].wecom.key.secret: secret 'wk' is not defined in the secret store"]


def test_secret_store(tmp_path):
    (tmp_path / "s.yaml").write_text("a: one\nb: 2\n")
    (tmp_path / "s.json").write_text(json.dumps({"c": "three"}))
    store = SecretStore.from_file(tmp_path / "s.yaml").merged(SecretStore.from_file(tmp_path / "s.json"))
    assert dict(store) == {"a": "one", "b": "2", "c": "three"} and "one" not in repr(store)
    with pytest.raises(SecretError, match="'zz' is not defined"):
        store.get_secret("zz")
    (tmp_path / "bad.yaml").write_text("- a\n")
    with pytest.raises(SecretError, match="must be a mapping"):
        SecretStore.from_file(tmp_path / "bad.yaml")
    (tmp_path / "nested.yaml").write_text("a: {b: c}\n")
    with pytest.raises(SecretError) as info:
        SecretStore.from_file(tmp_path / "nested.yaml")
    assert "'a'" in str(info.value) and "c" not in str(info.value).replace("secret", "")
    with pytest.raises(SecretError, match="cannot read"):
        SecretStore.from_file(tmp_path / "none.yaml")


@pytest.mark.parametrize("url, allowed", [
    ("http://127.0.0.1:9000/hook", True),
    ("https://hooks.example.com/x", True),
    ("https://HOOKS.example.com/x", True),
    ("https://a.b.internal.example.com/x", True),
    ("https://internal.example.com/x", False),  # *.domain means subdomains
    ("https://hooks.example.com.evil.org/x", False),
    ("https://user@evil.org/x?u=hooks.example.com", False),
    ("ftp://hooks.example.com/x", False),
    ("http://[::1]:80/x", True),
])
def test_host_allowed(url, allowed):
    assert host_allowed(url, ["127.0.0.1", "hooks.example.com", "*.internal.example.com", "[::1]"]) is allowed
