"""Matchers (Alertmanager syntax) and the route tree: nested routes, continue, regex, !=, inheritance,
the channels fallback, group keys."""
from __future__ import annotations

import pytest

from emowatch.streams.notify.errors import MatcherError
from emowatch.streams.notify.matchers import parse_matcher
from emowatch.streams.notify.routing import Router, alert_labels, group_key, group_labels

TREE = """
global: {webhook_allowed_hosts: [127.0.0.1]}
route:
  receiver: default
  group_by: [call_id]
  group_wait: 1s
  group_interval: 10s
  repeat_interval: 1h
  routes:
    - matchers: ['business_line="collections"', 'priority=~"HIGH|CRITICAL"']
      receiver: collections
      continue: true
      routes:
        - matchers: ['priority="CRITICAL"']
          receiver: boss
          group_wait: 0s
        - matchers: ['role!="CUSTOMER"']
          receiver: agents
    - matchers: ['team="vip-desk"']
      receiver: vip
      group_by: [rule_id]
      mute_time_intervals: [night]
    - matchers: ['rule_set=~"after.*"']
      receiver: aftersales
receivers:
  - {name: default, log: {}}
  - {name: collections, log: {}}
  - {name: boss, log: {}}
  - {name: agents, log: {}}
  - {name: vip, log: {}}
  - {name: aftersales, log: {}}
  - {name: webhook, log: {}}
  - {name: email, log: {}}
time_intervals:
  - name: night
    time_intervals: [{times: [{start_time: '00:00', end_time: '06:00'}]}]
"""


@pytest.fixture(name="router")
def router_fixture(make_config):
    return Router(make_config(TREE))


def receivers(router, record):
    return [m.receiver for m in router.match(record)]


@pytest.mark.parametrize("text, labels, expected", [
    ('a="x"', {"a": "x"}, True),
    ('a="x"', {"a": "y"}, False),
    ('a!="x"', {"a": "y"}, True),
    ('a!="x"', {}, True),
    ('a=""', {}, True),  # a missing label is the empty string
    ('a=~"HIGH|CRITICAL"', {"a": "CRITICAL"}, True),
    ('a=~"HIGH|CRITICAL"', {"a": "VERY HIGH"}, False),  # anchored
    ('a=~"HIGH"', {"a": "HIGHER"}, False),
    ('a!~"LOW|MEDIUM"', {"a": "HIGH"}, True),
    ('a!~".+"', {}, True),
    ("a=x", {"a": "x"}, True),  # bare value
    ('a = "x y"', {"a": "x y"}, True),
    ('a=~"\\d+"', {"a": "123"}, True),  # unknown escapes stay (regexes)
    ('a="say \\"hi\\""', {"a": 'say "hi"'}, True),
])
def test_matchers(text, labels, expected):
    assert parse_matcher(text).matches(labels) is expected


@pytest.mark.parametrize("text", ['a=~"("', 'a~"x"', '="x"', 'a="x', 'a="x"y"', "1a=x", 'a=x"'])
def test_invalid_matchers(text):
    with pytest.raises(MatcherError):
        parse_matcher(text)


def test_matcher_round_trips():
    for text in ['a="x"', 'a!~"\\\\d+"', 'a="q\\"uote"']:
        m = parse_matcher(text)
        assert parse_matcher(str(m)) == m


def test_label_set_is_labels_plus_fields(make_alert):
    record = make_alert(labels={"team": "vip-desk", "priority": "spoofed", "rule_name": "x"})
    assert alert_labels(record) == {
        "team": "vip-desk", "rule_name": "x", "priority": "HIGH", "business_line": "collections",
        "rule_id": "angry-sustained", "rule_set": "default", "role": "CUSTOMER", "action": "ALERT",
        "status": "FIRING", "call_id": "12345"}


def test_first_matching_child_wins_and_continue_goes_on(router, make_alert):
    # collections + HIGH matches the collections route (continue) and, as its child CRITICAL does not
    # match, the collections route handles it; the VIP route is also tried because of continue.
    assert receivers(router, make_alert()) == ["collections"]
    assert receivers(router, make_alert(labels={"team": "vip-desk"})) == ["collections", "vip"]


def test_nested_children(router, make_alert):
    assert receivers(router, make_alert(priority="CRITICAL")) == ["boss"]
    assert receivers(router, make_alert(role="AGENT")) == ["agents"]
    # first matching child wins: CRITICAL and AGENT -> boss only (boss has no continue)
    assert receivers(router, make_alert(priority="CRITICAL", role="AGENT")) == ["boss"]


def test_regex_and_negative_matchers(router, make_alert):
    assert receivers(router, make_alert(priority="MEDIUM")) == ["default"]  # =~ HIGH|CRITICAL fails
    assert receivers(router, make_alert(business_line="vip", rule_set="aftersales-2")) == ["aftersales"]
    assert receivers(router, make_alert(business_line="vip", rule_set="x-aftersales")) == ["default"]


def test_children_inherit_grouping_and_timings_unless_set(router, make_alert):
    (boss,) = router.match(make_alert(priority="CRITICAL"))
    assert (boss.group_by, boss.group_wait, boss.group_interval, boss.repeat_interval) == (("call_id",), 0, 10_000,
                                                                                          3_600_000)
    vip = router.match(make_alert(business_line="vip", labels={"team": "vip-desk"}))[0]
    assert (vip.receiver, vip.group_by, vip.group_wait, vip.mute_time_intervals) == ("vip", ("rule_id",), 1000,
                                                                                     ("night",))
    assert boss.mute_time_intervals == ()  # not inherited (Alertmanager)


def test_channels_fallback_when_only_the_root_matches(router, make_alert):
    record = make_alert(business_line="vip", channels=["webhook", "email", "sms", "webhook"])
    matches = router.match(record)
    assert [m.receiver for m in matches] == ["webhook", "email"]  # sms is no receiver; duplicates once
    assert {m.route_id for m in matches} == {"{}"} and matches[0].group_wait == 1000
    assert receivers(router, make_alert(business_line="vip", channels=["sms"])) == ["default"]
    # a matching route wins over the channels
    assert receivers(router, make_alert(channels=["webhook"])) == ["collections"]


def test_route_ids_are_stable_and_readable(router):
    assert router.route_ids() == [
        "{}",
        '{}/{business_line="collections",priority=~"HIGH|CRITICAL"}/0',
        '{}/{business_line="collections",priority=~"HIGH|CRITICAL"}/0/{priority="CRITICAL"}/0',
        '{}/{business_line="collections",priority=~"HIGH|CRITICAL"}/0/{role!="CUSTOMER"}/1',
        '{}/{team="vip-desk"}/1',
        '{}/{rule_set=~"after.*"}/2',
    ]


def test_group_labels_and_keys(router, make_alert):
    record = make_alert()
    (match,) = router.match(record)
    labels = group_labels(alert_labels(record), match.group_by)
    assert labels == {"call_id": "12345"}
    assert group_key(match, labels) == ('{}/{business_line="collections",priority=~"HIGH|CRITICAL"}/0'
                                        ':collections:{call_id="12345"}')
    everything = group_labels(alert_labels(record), ("...",))
    assert everything["rule_id"] == "angry-sustained" and list(everything) == sorted(everything)
    assert group_labels({"x": "1"}, ("call_id",)) == {}  # missing labels are left out
