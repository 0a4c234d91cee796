"""Fault points (streams/faults.py): the spec grammar, fail-fast parse errors, when each rule fires, and a
real SIGKILL of a process at the Nth hit."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from emowatch.streams import faults
from emowatch.streams.faults import FaultSpecError, InjectedFault, Rule, fault_point, parse
from emowatch.streams.settings import SettingsError, load_settings
from emowatch.streams.sink.outage import retryable


@pytest.fixture(autouse=True)
def _disarmed():
    faults.arm(None)
    yield
    faults.arm(None)


def test_the_spec_grammar():
    rules = parse(" sink.after_insert=kill@3, sink.after_record=raise@2-4,sink.after_commit=raise@5-,"
                  "sink.connect=raise@1~2.5s ")
    assert rules == {
        "sink.after_insert": Rule("sink.after_insert", "kill", 3, 3),
        "sink.after_record": Rule("sink.after_record", "raise", 2, 4),
        "sink.after_commit": Rule("sink.after_commit", "raise", 5, None),
        "sink.connect": Rule("sink.connect", "raise", 1, 1, 2.5),
    }
    assert parse("sink.connect=kill") == {"sink.connect": Rule("sink.connect", "kill", 1, 1)}
    assert parse("") == parse(" , ") == {}


@pytest.mark.parametrize(("spec", "says"), [
    ("sink.after_insrt=kill@3", "unknown fault point 'sink.after_insrt'"),
    ("sink.after_insert", "expected point=action"),
    ("sink.after_insert=explode@1", "the action is kill@N"),
    ("sink.after_insert=kill@0", "hits count from 1"),
    ("sink.after_insert=raise@5-2", "cannot end before it starts"),
    ("sink.after_insert=kill@2-3", "kill fires once"),
    ("sink.after_insert=kill@1~2s", "kill fires once"),
    ("sink.after_insert=kill@1,sink.after_insert=raise@2", "given twice"),
])
def test_a_bad_spec_fails_fast_with_the_setting_name(spec, says):
    with pytest.raises(FaultSpecError, match=says):
        parse(spec)
    with pytest.raises(SettingsError) as err:
        load_settings({"EMOWATCH_FAULT_POINTS": spec})
    assert "EMOWATCH_FAULT_POINTS" in str(err.value) and says in str(err.value)


def test_the_setting_is_off_by_default_and_accepted_when_valid():
    assert load_settings({}).fault_points == ""
    assert load_settings({"EMOWATCH_FAULT_POINTS": "sink.after_commit=kill@2"}).fault_points == \
        "sink.after_commit=kill@2"


def test_unarmed_points_do_nothing_and_count_nothing():
    for _ in range(3):
        fault_point("sink.after_insert")
    assert faults.hits("sink.after_insert") == 0


def _fired(point: str, n: int) -> list[int]:
    out = []
    for hit in range(1, n + 1):
        try:
            fault_point(point)
        except InjectedFault as exc:
            assert f"{point} (hit {hit})" in str(exc)
            out.append(hit)
    return out


def test_raise_fires_at_the_given_hits_only_and_counts_every_hit():
    faults.arm("sink.after_record=raise@3,sink.after_insert=raise@2-4,sink.after_commit=raise@4-")
    assert _fired("sink.after_record", 6) == [3]
    assert _fired("sink.after_insert", 6) == [2, 3, 4]
    assert _fired("sink.after_commit", 6) == [4, 5, 6]
    assert _fired("sink.connect", 2) == []  # armed process, no rule for this point: counted only
    assert faults.hits("sink.after_record") == 6 and faults.hits("sink.connect") == 2
    faults.arm("")
    assert _fired("sink.after_insert", 3) == [] and faults.hits("sink.after_insert") == 0


def test_raise_for_a_duration_stops_once_the_time_is_over():
    rule = Rule("sink.connect", "raise", 2, None, 1.5)
    assert not rule.fires(1, None)
    assert rule.fires(2, None) and rule.fires(3, 0.2) and rule.fires(9, 1.49)
    assert not rule.fires(10, 1.5)


def test_the_injected_fault_is_a_retryable_emowatch_error():
    from emowatch.topics.errors import EmowatchError

    faults.arm("sink.after_insert=raise@1")
    with pytest.raises(InjectedFault) as err:
        fault_point("sink.after_insert")
    assert isinstance(err.value, EmowatchError) and isinstance(err.value, ConnectionError)
    assert retryable(err.value)


@pytest.mark.integration  # a process is started and killed
def test_kill_sigkills_the_process_at_the_nth_hit():
    code = textwrap.dedent("""
        from emowatch.streams import faults
        faults.arm("sink.after_commit=kill@3")
        for i in range(1, 6):
            print("hit", i, flush=True)
            faults.fault_point("sink.after_commit")
        print("survived", flush=True)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -9, proc.stderr
    assert proc.stdout.split("\n")[:3] == ["hit 1", "hit 2", "hit 3"] and "survived" not in proc.stdout
    assert "hit 4" not in proc.stdout


def test_every_fault_point_in_the_code_is_declared():
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "streams"
    used = {m for p in root.rglob("*.py") for m in re.findall(r'fault_point\("([^"]+)"\)', p.read_text())}
    assert used and used <= set(faults.POINTS), used - set(faults.POINTS)
    assert {"sink.after_record", "sink.after_insert", "sink.after_commit", "sink.connect"} <= used
