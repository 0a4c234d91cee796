"""Convert a seed rule file (``alert_rules.yaml``, :mod:`emowatch.rules.seed_format`) into an emowatch rule file.

Mapping (docs/rules.md, "The seed's rule files"):

* ``emotion`` + ``threshold`` -> ``when: {emotion: E, above: T}`` (the seed fires *above* it);
* ``combination: {emotions, min_sum}`` -> ``when: {sum: [...], above: min_sum}``;
* ``duration_sec`` -> ``for`` (left out: ``0s``, fires at the first window above the threshold);
* ``priority``, ``channels`` -> the same keys (left out: the rule set's defaults, medium and webhook);
* ``name`` -> ``name``, plus an ``id`` made from it: the slug of an ASCII name (``VIP fear`` ->
  ``vip-fear``), else its ASCII words (or ``seed``) and 8 hex of the name's sha256
  (``VIP客户恐惧告警`` -> ``vip-<hash>``). The id does not depend on the rule's position, so
  reordering the seed file keeps every rule's state across a hot reload.

Every converted rule gets generated examples that pin the seed's semantics: the condition held
past ``duration_sec`` fires (and resolves when the call ends); held for one evaluation step less it
does not; below the threshold it does not. :func:`convert_seed` parses the result with the normal
loader and runs those examples, so a conversion that succeeds always passes ``emowatch rules check``.
Pure: no Kafka, no CLI.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import PurePath
from typing import Any

from pydantic import TypeAdapter, ValidationError

from emowatch.rules.durations import format_duration_ms
from emowatch.rules.errors import RuleFileError
from emowatch.rules.examples import run_example
from emowatch.rules.loader import parse_ruleset
from emowatch.rules.model import Defaults, Identifier, RuleSet
from emowatch.rules.seed_format import SeedFile, SeedRule, read_seed_rules
from emowatch.topics.errors import EmowatchError

_DEFAULTS = Defaults()  # the converted file states these explicitly (window, hop, priority, channels, role)
_ID: TypeAdapter[str] = TypeAdapter(Identifier)


class SeedOptionError(EmowatchError, ValueError):
    """An invalid conversion option (``rule_set`` or ``business_line``); the message names it."""


@dataclass(frozen=True)
class Conversion:
    """The emowatch rule file made from a seed file: its text, the loaded rule set, and the notes
    (what was assumed) that its header lists."""

    text: str
    ruleset: RuleSet
    notes: tuple[str, ...]
    source_name: str


def seed_rule_id(name: str) -> str:
    """A stable, valid rule id for a seed rule's name (see the module docstring)."""
    words = re.findall(r"[a-z0-9]+", name.lower())
    slug = "-".join(words)[:100].strip("-")
    if slug and name.isascii():
        return slug
    return f"{slug or 'seed'}-{hashlib.sha256(name.encode('utf-8')).hexdigest()[:8]}"


def default_rule_set_id(source_name: str) -> str:
    """The converted rule set's id when none is given: the file's stem as an id (``alert_rules``)."""
    stem = PurePath(source_name).stem
    slug = re.sub(r"[^A-Za-z0-9_.:-]+", "-", stem).strip("-_.:")[:128]
    return slug or "seed"


def convert_seed(text: str, source_name: str = "<string>", rule_set: str | None = None,
                 business_line: str = "*") -> Conversion:
    """Convert seed YAML into emowatch YAML; raise :class:`RuleFileError` (lines of the seed file,
    every problem in ``.errors``) for input that cannot be converted, :class:`SeedOptionError` for
    a bad ``rule_set``/``business_line``."""
    rule_set = default_rule_set_id(source_name) if rule_set is None else rule_set
    try:
        _ID.validate_python(rule_set)
    except ValidationError:
        raise SeedOptionError(f"rule_set {rule_set!r} is not a valid id: [A-Za-z0-9][A-Za-z0-9_.:-]*, "
                              "at most 128 characters") from None
    if not 0 < len(business_line) <= 128 or business_line != business_line.strip():
        raise SeedOptionError(f"business_line {business_line!r}: 1 to 128 characters, no surrounding spaces")
    seed = read_seed_rules(text, source_name)
    ids = _rule_ids(seed)
    notes = _notes(seed)
    digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
    out = _render(seed, ids, rule_set, business_line, digest, notes)
    ruleset = parse_ruleset(out, f"{source_name} (converted)")
    _run_generated_examples(seed, ruleset)
    return Conversion(out, ruleset, tuple(notes), source_name)


def _rule_ids(seed: SeedFile) -> list[str]:
    ids: list[str] = []
    errors: list[RuleFileError] = []
    first: dict[str, SeedRule] = {}
    for rule in seed.rules:
        rid = seed_rule_id(rule.name)
        if rid in first:
            other = first[rid]
            errors.append(RuleFileError(seed.name, rule.line, 0, f"rules[{rule.index}]: name {rule.name!r} gives the "
                                        f"rule id {rid!r}, as {other.name!r} (line {other.line}) does; rename one"))
        first.setdefault(rid, rule)
        ids.append(rid)
    if errors:
        raise RuleFileError(errors[0].file, errors[0].line, 0, errors[0].reason, errors=errors)
    return ids


def _notes(seed: SeedFile) -> list[str]:
    notes: list[str] = []
    hop = _DEFAULTS.hop
    for rule in seed.rules:
        where = f"rules[{rule.index}] {rule.name!r} (line {rule.line})"
        notes += [f"{where}: {note}" for note in rule.notes]
        if rule.duration_ms % hop:
            held = -(-rule.duration_ms // hop) * hop
            notes.append(f"{where}: duration_sec {rule.duration_ms / 1000:g} is checked every "
                         f"{format_duration_ms(hop)}, so it fires after {format_duration_ms(held)}")
        if rule.priority is None:
            notes.append(f"{where}: no priority; {_DEFAULTS.priority} (defaults.priority)")
        if rule.channels is None:
            notes.append(f"{where}: no channels; {', '.join(_DEFAULTS.channels)} (defaults.channels)")
    return notes


def _render(seed: SeedFile, ids: list[str], rule_set: str, business_line: str, digest: str,
            notes: list[str]) -> str:
    source = PurePath(seed.name).name
    lines = [
        f"# Converted from the seed's rule format by `emowatch rules convert`: {source} (sha256 {digest}).",
        "# emotion + threshold -> when: {emotion, above}; combination -> when: {sum, above: min_sum};",
        "# duration_sec -> for; name -> name + a generated id; priority and channels as they were.",
        "# Every rule has generated examples (fires once held; not when shorter; not below the threshold)",
        "# that `emowatch rules check` runs. The seed has no speaker roles: role any = every speaker.",
        "# Notes:" if notes else "# Notes: none (every key was converted as it was).",
        *[f"#   - {note}" for note in notes],
        "",
        f"rule_set: {rule_set}",
        f"business_line: {_q(business_line)}",
        f"description: {_q(f'Converted from {source} (the seed alert_rules.yaml format).')}",
        "",
        "defaults:",
        f"  window: {format_duration_ms(_DEFAULTS.window)}",
        f"  hop: {format_duration_ms(_DEFAULTS.hop)}",
        f"  priority: {_DEFAULTS.priority}",
        f"  channels: [{', '.join(_DEFAULTS.channels)}]",
        f"  role: {_DEFAULTS.role}",
        "",
        "rules:",
    ]
    for rule, rid in zip(seed.rules, ids):
        lines += [f"  # {source} line {rule.line}", f"  - id: {rid}", f"    name: {_q(rule.name)}",
                  f"    when: {_when(rule)}", f"    for: {format_duration_ms(rule.duration_ms)}"]
        if rule.priority is not None:
            lines.append(f"    priority: {rule.priority}")
        if rule.channels is not None:
            lines.append(f"    channels: [{', '.join(rule.channels)}]")
        lines.append("    examples:")
        for example in _examples(rule):
            lines += _render_example(example)
        lines.append("")
    return "\n".join(lines).rstrip("\n") + "\n"


def _when(rule: SeedRule) -> str:
    if rule.combination:
        return f"{{sum: [{', '.join(rule.emotions)}], above: {_num(rule.threshold)}}}"
    return f"{{emotion: {rule.emotions[0]}, above: {_num(rule.threshold)}}}"


def _examples(rule: SeedRule) -> list[dict[str, Any]]:
    """The generated examples of a rule (see the module docstring)."""
    window, hop = _DEFAULTS.window, _DEFAULTS.hop
    held = -(-rule.duration_ms // hop) * hop  # evaluation points come every hop
    fire_at = window + held  # the first full window is at `window`
    label = "+".join(rule.emotions)
    k = len(rule.emotions)
    t = rule.threshold
    high = _inside(t, 1.0, k)
    shown = _num(round(high * k, 9))
    when = f"once held for {format_duration_ms(rule.duration_ms)}" if rule.duration_ms else "at the first full window"
    examples = [{
        "name": f"{label} at {shown} fires {when}",
        "end_of_call": True, "scores": [(fire_at + window, _probs(rule, high))],
        "expect": [("FIRING", fire_at), ("RESOLVED", fire_at + window)],
    }]
    if rule.duration_ms:
        examples.append({
            "name": f"{label} at {shown} for {format_duration_ms(fire_at - hop)} holds only "
                    f"{format_duration_ms(held - hop)} (under {format_duration_ms(rule.duration_ms)}): stays quiet",
            "end_of_call": True, "scores": [(fire_at - hop, _probs(rule, high))], "expect": []})
    if t > 0:
        low = _inside(max(0.0, t - 0.2), t, k)
        examples.append({"name": f"{label} at {_num(round(low * k, 9))} (not above {_num(t)}) stays quiet",
                         "end_of_call": False, "scores": [(fire_at + window, _probs(rule, low))], "expect": []})
    return examples


def _inside(lo: float, hi: float, k: int) -> float:
    """A short per-emotion probability ``q`` with ``lo < k*q < hi`` (clear of both ends)."""
    mid = (lo + hi) / 2 / k
    for digits in range(1, 10):
        q = round(mid, digits)
        if k * q - lo > 1e-6 and hi - k * q > 1e-6:
            return q
    return mid


def _probs(rule: SeedRule, share: float) -> dict[str, float]:
    return {emotion: share for emotion in rule.emotions}


def _render_example(example: dict[str, Any]) -> list[str]:
    lines = [f"      - name: {_q(example['name'])}"]
    if example["end_of_call"]:
        lines.append("        end_of_call: true")
    lines.append("        scores:")
    for duration, probs in example["scores"]:
        shares = ", ".join(f"{emotion}: {_num(p)}" for emotion, p in probs.items())
        lines.append(f"          - {{for: {format_duration_ms(duration)}, probs: {{{shares}}}}}")
    if not example["expect"]:
        lines.append("        expect: []")
    else:
        lines.append("        expect:")
        lines += [f"          - {{status: {status}, at: {format_duration_ms(at)}}}" for status, at in example["expect"]]
    return lines


def _run_generated_examples(seed: SeedFile, ruleset: RuleSet) -> None:
    errors = []
    for rule, converted in zip(seed.rules, ruleset.rules):
        for example in converted.examples:
            _, problem = run_example(ruleset, converted, example)
            if problem is not None:
                errors.append(RuleFileError(seed.name, rule.line, 0, f"rules[{rule.index}] {rule.name!r}: the "
                                            f"generated example {example.name!r} does not behave as the seed's "
                                            f"rule should: {problem}"))
    if errors:
        raise RuleFileError(errors[0].file, errors[0].line, 0, errors[0].reason, errors=errors)


def _q(text: str) -> str:
    """A YAML double-quoted scalar (JSON strings are valid YAML)."""
    return json.dumps(text, ensure_ascii=False)


def _num(value: float) -> str:
    """A number as YAML reads it back (no exponent: PyYAML takes ``1e-05`` for a string)."""
    if float(value).is_integer():
        return str(int(value))
    text = repr(float(value))
    return f"{float(value):.12f}".rstrip("0") if "e" in text else text
