"""The seed's rule files (``alert_rules.yaml``): recognise them and read them into checked rules.

The seed (docs/rules.md, "The seed's rule files") configures its alert engine with::

    rules:
      - name: "VIP客户恐惧告警"        # required
        emotion: "fearful"            # one emotion above a confidence threshold ...
        threshold: 0.6
        duration_sec: 1.0             # held this long (optional, 0 = at once)
        priority: "high"              # optional
        channels: ["webhook", "email"]  # optional
      - name: "售后失望组合"
        combination:                  # ... or several emotions' probabilities summed
          emotions: ["sad", "neutral"]
          min_sum: 0.8
        priority: "medium"

:func:`read_seed_rules` checks such a file as strictly as the rule language checks its own
(unknown keys, wrong types, unknown emotions, probabilities outside [0, 1], a rule with both or
neither of ``emotion`` and ``combination``...) and reports every problem as a
:class:`RuleFileError` at the line of the offending key. Emotions may be written as emowatch's
labels (any case), as the model's Chinese names or tokens (``生气``, ``生气/angry``, ``<unk>``)
or with the article's own words for two classes (``愤怒`` angry, ``中性`` neutral).
Pure: no Kafka, no CLI.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from emowatch.rules.errors import RuleFileError
from emowatch.rules.model import EMOTIONS, PRIORITIES, Channel
from emowatch.rules.yamlsource import SourceDoc, dotted, parse_document, sorted_errors

#: The model's Chinese class names (``models/checkpoint.py`` TOKENS ``生气/angry`` ...) plus the
#: seed article's words for two classes; ``tests/rules/test_seed_format.py`` checks them against TOKENS.
CHINESE_NAMES: dict[str, str] = {
    "生气": "angry", "愤怒": "angry", "厌恶": "disgusted", "恐惧": "fearful", "开心": "happy",
    "中立": "neutral", "中性": "neutral", "其他": "other", "难过": "sad", "吃惊": "surprised",
}
UNKNOWN_TOKEN = "<unk>"
#: Chinese names of the notifier's integration kinds (docs/notify.md) a seed file may use as channels.
CHANNEL_ALIASES: dict[str, str] = {"企业微信": "wecom", "钉钉": "dingtalk", "飞书": "feishu", "邮件": "email"}

RULE_KEYS = ("name", "emotion", "threshold", "combination", "duration_sec", "priority", "channels")
COMBINATION_KEYS = ("emotions", "min_sum")
_SEED_ONLY_KEYS = {"emotion", "threshold", "combination", "duration_sec"}
_EMOWATCH_KEYS = {"rule_set", "business_line", "defaults", "silences", "inhibit"}
_CHANNEL: TypeAdapter[str] = TypeAdapter(Channel)


@dataclass(frozen=True)
class SeedRule:
    """One seed rule, checked and normalised (emotions are emowatch labels)."""

    index: int
    line: int
    name: str
    emotions: tuple[str, ...]  # one emotion, or the combination's emotions
    threshold: float  # ``threshold``, or the combination's ``min_sum``
    combination: bool
    duration_ms: int
    priority: str | None
    channels: tuple[str, ...] | None
    notes: tuple[str, ...] = ()  # how names were read (aliases), for the converted file's header


@dataclass(frozen=True)
class SeedFile:
    """The rules of a seed file, in file order."""

    name: str
    rules: tuple[SeedRule, ...]


def is_seed_data(data: Any) -> bool:
    """True for a document in the seed's format: a top-level ``rules`` list whose entries have
    seed keys (``emotion``, ``threshold``, ``combination``, ``duration_sec``) and no ``when``/``id``,
    and none of an emowatch rule file's top-level keys."""
    if not isinstance(data, dict) or _EMOWATCH_KEYS & set(data) or not isinstance(data.get("rules"), list):
        return False
    entries = [r for r in data["rules"] if isinstance(r, dict)]
    if any("when" in r or "id" in r for r in entries):
        return False
    return any(_SEED_ONLY_KEYS & set(r) for r in entries)


def is_seed_text(text: str) -> bool:
    """:func:`is_seed_data` of YAML text (False when it does not parse; the loader reports that)."""
    try:
        return is_seed_data(yaml.load(text, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))
    except yaml.YAMLError:
        return False


def normalise_emotion(value: Any) -> str:
    """emowatch's label for an emotion written as a label, a Chinese name or a model token."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected an emotion name, got {value!r}")
    text = value.strip()
    if text == UNKNOWN_TOKEN:
        return "unknown"
    if "/" in text:  # a model token, e.g. 生气/angry: both halves must name the same class
        chinese, english = (part.strip() for part in text.split("/", 1))
        if CHINESE_NAMES.get(chinese) == english.lower():
            return english.lower()
    elif text.lower() in EMOTIONS:
        return text.lower()
    elif text in CHINESE_NAMES:
        return CHINESE_NAMES[text]
    known = list(EMOTIONS) + list(CHINESE_NAMES)
    close = difflib.get_close_matches(text.lower(), known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ValueError(f"unknown emotion {value!r}{hint}; expected one of: {', '.join(EMOTIONS)} "
                     f"(or the model's Chinese names/tokens, e.g. 生气 or 生气/angry)")


def read_seed_rules(text: str, source_name: str = "<string>") -> SeedFile:
    """Check and normalise a seed rule file; raise :class:`RuleFileError` (every problem in ``.errors``)."""
    doc, errors = parse_document(text, source_name, RuleFileError,
                                 "a seed rule file must be a YAML mapping with a 'rules' list")
    rules: list[SeedRule] = []
    if doc is not None:
        reader = _Reader(doc, source_name)
        rules = reader.read()
        errors.extend(reader.errors)
    if errors:
        errors = sorted_errors(errors)
        first = errors[0]
        raise RuleFileError(first.file, first.line, first.column, first.reason, errors=list(errors))
    return SeedFile(source_name, tuple(rules))


class _Reader:
    """Walks a seed document, collecting normalised rules and positioned errors."""

    def __init__(self, doc: SourceDoc, name: str) -> None:
        self.doc, self.name, self.errors = doc, name, []  # type: list[RuleFileError]

    def fail(self, path: tuple[Any, ...], reason: str) -> None:
        line, col = self.doc.position(path)
        self.errors.append(RuleFileError(self.name, line, col, reason))

    def read(self) -> list[SeedRule]:
        data = self.doc.data
        for key in data:
            if key != "rules":
                self.fail((key,), f"unknown key {key!r} at the top level of a seed rule file (only 'rules')")
        entries = data.get("rules")
        if not isinstance(entries, list) or not entries:
            self.fail(("rules",) if "rules" in data else (), "a seed rule file needs a non-empty 'rules' list")
            return []
        rules = []
        for i, entry in enumerate(entries):
            if not isinstance(entry, dict):
                self.fail(("rules", i), f"rules[{i}]: a rule must be a mapping with 'name' and "
                          "'emotion' + 'threshold' or 'combination'")
                continue
            rule = self._rule(i, entry)
            if rule is not None:
                rules.append(rule)
        return rules

    def _rule(self, i: int, entry: dict[str, Any]) -> SeedRule | None:
        base = ("rules", i)
        before = len(self.errors)
        for key in entry:
            if key not in RULE_KEYS:
                self.fail(base + (key,), f"unknown key {key!r} in rules[{i}]; a seed rule has: {', '.join(RULE_KEYS)}")
        name = entry.get("name")
        if "name" not in entry:
            self.fail(base, f"missing required key 'name' in rules[{i}]")
        elif not isinstance(name, str) or not name.strip():
            self.fail(base + ("name",), f"rules[{i}].name: expected a non-empty string, got {name!r}")
        notes: list[str] = []
        emotions, threshold, combination = self._condition(i, entry, notes)
        duration_ms = self._duration(i, entry)
        priority = self._priority(i, entry)
        channels = self._channels(i, entry, notes)
        if len(self.errors) > before:
            return None
        line = self.doc.position(base)[0]
        return SeedRule(i, line, str(name).strip(), emotions, threshold, combination, duration_ms, priority,
                        channels, tuple(notes))

    def _condition(self, i: int, entry: dict[str, Any], notes: list[str]) -> tuple[tuple[str, ...], float, bool]:
        base = ("rules", i)
        has_emotion, has_combination = "emotion" in entry, "combination" in entry
        if has_emotion and has_combination:
            self.fail(base + ("combination",), f"rules[{i}] has both 'emotion' and 'combination'; give one of them")
            return (), 0.0, False
        if has_combination:
            if "threshold" in entry:
                self.fail(base + ("threshold",), f"rules[{i}].threshold: a combination takes 'min_sum' "
                          "inside 'combination', not 'threshold'")
            return self._combination(i, entry["combination"], notes)
        if not has_emotion:
            given = "has 'threshold' but no 'emotion'" if "threshold" in entry else "has no condition"
            self.fail(base, f"rules[{i}] {given}: give 'emotion' + 'threshold' or 'combination: {{emotions, min_sum}}'")
            return (), 0.0, False
        emotion = self._emotion(base + ("emotion",), entry["emotion"], notes)
        if "threshold" not in entry:
            self.fail(base, f"missing required key 'threshold' in rules[{i}] (the emotion's confidence, 0 to 1)")
            return (), 0.0, False
        threshold = self._probability(base + ("threshold",), entry["threshold"])
        return ((emotion,) if emotion else ()), threshold, False

    def _combination(self, i: int, value: Any, notes: list[str]) -> tuple[tuple[str, ...], float, bool]:
        path = ("rules", i, "combination")
        if not isinstance(value, dict):
            self.fail(path, f"rules[{i}].combination: expected a mapping with 'emotions' and 'min_sum'")
            return (), 0.0, True
        for key in value:
            if key not in COMBINATION_KEYS:
                self.fail(path + (key,), f"unknown key {key!r} in rules[{i}].combination; "
                          f"a combination has: {', '.join(COMBINATION_KEYS)}")
        for key in COMBINATION_KEYS:
            if key not in value:
                self.fail(path, f"missing required key {key!r} in rules[{i}].combination")
        raw = value.get("emotions")
        emotions: list[str] = []
        if "emotions" in value:
            if not isinstance(raw, list) or len(raw) < 2:
                self.fail(path + ("emotions",), f"rules[{i}].combination.emotions: expected a list of at least "
                          f"two emotions, got {raw!r}")
            else:
                emotions = [e for k, item in enumerate(raw) if (e := self._emotion(path + ("emotions", k), item,
                                                                                   notes))]
                if len(set(emotions)) != len(emotions):
                    self.fail(path + ("emotions",), f"rules[{i}].combination.emotions lists an emotion twice")
        threshold = self._probability(path + ("min_sum",), value["min_sum"]) if "min_sum" in value else 0.0
        return tuple(emotions), threshold, True

    def _emotion(self, path: tuple[Any, ...], value: Any, notes: list[str]) -> str:
        try:
            emotion = normalise_emotion(value)
        except ValueError as exc:
            self.fail(path, f"{dotted(path)}: {exc}")
            return ""
        if emotion != value:
            notes.append(f"emotion {value!r} is {emotion}")
        return emotion

    def _probability(self, path: tuple[Any, ...], value: Any) -> float:
        what = dotted(path)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            self.fail(path, f"{what}: expected a probability between 0 and 1 (e.g. 0.6), got {value!r}")
        elif not 0.0 <= value <= 1.0:
            hint = f" ({value:g}% is {value / 100:g})" if 1.0 < value <= 100.0 else ""
            self.fail(path, f"{what}: {value!r} is outside [0, 1]; it is a probability{hint}")
        elif value == 1.0:
            self.fail(path, f"{what}: 1 can never be exceeded (the seed's rules fire above the threshold)")
        else:
            return float(value)
        return 0.0

    def _duration(self, i: int, entry: dict[str, Any]) -> int:
        path = ("rules", i, "duration_sec")
        value = entry.get("duration_sec", 0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            self.fail(path, f"rules[{i}].duration_sec: expected seconds as a number >= 0 (e.g. 1.5), got {value!r}")
            return 0
        ms = value * 1000
        if abs(ms - round(ms)) > 1e-6:
            self.fail(path, f"rules[{i}].duration_sec: {value!r} is not a whole number of milliseconds")
            return 0
        return int(round(ms))

    def _priority(self, i: int, entry: dict[str, Any]) -> str | None:
        if "priority" not in entry:
            return None
        value = entry["priority"]
        if isinstance(value, str) and value.strip().lower() in PRIORITIES:
            return value.strip().lower()
        self.fail(("rules", i, "priority"), f"rules[{i}].priority: {value!r} is not one of {', '.join(PRIORITIES)}")
        return None

    def _channels(self, i: int, entry: dict[str, Any], notes: list[str]) -> tuple[str, ...] | None:
        if "channels" not in entry:
            return None
        path = ("rules", i, "channels")
        value = entry["channels"]
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list):
            self.fail(path, f"rules[{i}].channels: expected a list of channel names, got {value!r}")
            return None
        out: list[str] = []
        for k, item in enumerate(items):
            if not isinstance(item, str) or not item.strip():
                self.fail(path + (k,), f"rules[{i}].channels[{k}]: expected a channel name, got {item!r}")
                continue
            channel = CHANNEL_ALIASES.get(item.strip(), item.strip().lower())
            if not _valid_channel(channel):
                self.fail(path + (k,), f"rules[{i}].channels[{k}]: {item!r} is not a channel name emowatch "
                          "accepts (lower-case letters, digits, _ . : -, starting with a letter)")
                continue
            if channel != item:
                notes.append(f"channel {item!r} is {channel}")
            if channel not in out:
                out.append(channel)
        return tuple(out)


def _valid_channel(name: str) -> bool:
    try:
        _CHANNEL.validate_python(name)
    except ValidationError:
        return False
    return True
