"""Rule-level evaluation (issue #16): which rules *should* have alerted on a call against which *did*. Pure.

The labelled set is a CSV file, one call per row (a header row is required; line numbers in errors are the file's):

* ``audio``: a call recording (WAV; relative paths: to the CSV's folder), or ``call_id``: a call already in the
  history (its stored scores) - one of the two per row;
* ``expected``: the ids of the rules that should fire on the call, separated by ``;`` (empty or ``none``: no rule
  should fire); every id must be a rule of the evaluated rule file;
* ``business_line`` (optional): the call's business line. Audio rows without one get the rule set's line (``default``
  for a ``*`` set); a row the rule set does not serve is an error (nothing could fire on it);
* ``role`` (optional, mono audio): CUSTOMER, AGENT or MIXED (default), as ``emowatch send --role``;
* ``attr.<name>`` (optional): call attributes (``attr.agent_id``), as the gateway's ``attr.<name>=`` parameters.

Per rule, over the calls: ``tp`` (expected and fired), ``fp`` (fired, not expected), ``fn`` (expected, not fired),
``tn`` (neither), precision, recall and F1. A ratio whose denominator is 0 is reported as 0 and named in the
rule's ``undefined`` list (precision: the rule never fired; recall: no call expected it) - scikit-learn's
``zero_division=0``. ``micro`` sums the counts of every rule; ``any_alert`` is the call-level question "should this
call have alerted at all" (any expected rule vs any fired rule).
"""

from __future__ import annotations

import csv
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from emowatch.models.quality.errors import QualityError
from emowatch.models.quality.labels import audio_path

__all__ = ["LabelledCall", "fired_rules", "read_calls", "rule_report"]

NONE_EXPECTED = "none"
"""The ``expected`` cell of a call on which no rule should fire (an empty cell says the same)."""
CALL_ROLES = ("CUSTOMER", "AGENT", "MIXED")


@dataclass(frozen=True)
class LabelledCall:
    """One row of the labelled set: the call (a recording or a stored call) and the rules expected to fire."""

    line: int
    expected: frozenset[str]
    audio: Path | None = None
    call_id: str | None = None
    business_line: str | None = None  # None: not given (a stored call keeps its own)
    role: str = "MIXED"
    attributes: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """What the reports show for the call: the recording's file name, or the stored call's id."""
        return self.audio.name if self.audio is not None else str(self.call_id)


def _expected(cell: str, known: Collection[str], where: str) -> frozenset[str]:
    ids = [p.strip() for p in cell.split(";") if p.strip()]
    if len(ids) == 1 and ids[0].lower() == NONE_EXPECTED:
        return frozenset()
    if any(i.lower() == NONE_EXPECTED for i in ids):
        raise QualityError(f"{where}: expected {cell!r} combines {NONE_EXPECTED!r} with rule ids")
    unknown = [i for i in ids if i not in known]
    if unknown:
        raise QualityError(f"{where}: unknown rule id(s) {', '.join(map(repr, unknown))} in expected "
                           f"(the rule file's rules: {', '.join(sorted(known))})")
    return frozenset(ids)


def read_calls(path: str | Path, rule_ids: Collection[str], *, business_line: str = "*",
               require_audio_files: bool = True) -> list[LabelledCall]:
    """The rows of a labelled calls CSV (see the module's text). ``rule_ids``: the rule file's rules;
    ``business_line``: the rule set's (``*``: every line). :class:`QualityError` with file and line for a bad row."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise QualityError(f"{path}: cannot read the labelled calls: {getattr(exc, 'strerror', None) or exc}") from None
    reader = csv.DictReader(text.splitlines())
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    if "expected" not in header:
        raise QualityError(f"{path}:1: no 'expected' column (columns: {header})")
    if "audio" not in header and "call_id" not in header:
        raise QualityError(f"{path}:1: needs an 'audio' or a 'call_id' column (columns: {header})")
    default_line = "default" if business_line == "*" else business_line
    calls: list[LabelledCall] = []
    stored: dict[str, int] = {}
    for row in reader:
        where = f"{path}:{reader.line_num}"
        cell = {k: (v or "").strip() for k, v in row.items() if k is not None}
        audio_raw, call_id = cell.get("audio", ""), cell.get("call_id", "")
        if bool(audio_raw) == bool(call_id):
            raise QualityError(f"{where}: give either audio or call_id" + (" (not both)" if audio_raw else ""))
        expected = _expected(cell.get("expected", ""), rule_ids, where)
        line = cell.get("business_line") or None
        if line is not None and business_line != "*" and line != business_line:
            raise QualityError(f"{where}: business line {line!r} is not served by the rule set (business line "
                               f"{business_line!r}): no rule could fire on this call")
        role = (cell.get("role") or "MIXED").upper()
        if role not in CALL_ROLES:
            raise QualityError(f"{where}: role {cell['role']!r} is not one of {', '.join(CALL_ROLES)}")
        if call_id and cell.get("role"):
            raise QualityError(f"{where}: role applies to audio rows only (a stored call has its own roles)")
        attributes = {k[len("attr."):]: v for k, v in cell.items() if k.startswith("attr.") and len(k) > 5 and v}
        if call_id and attributes:
            raise QualityError(f"{where}: attr.* columns apply to audio rows only (a stored call has its own)")
        audio = None
        if audio_raw:
            audio = audio_path(audio_raw, path, where, require_audio_files)
            line = line or default_line
        elif call_id in stored:
            raise QualityError(f"{where}: call {call_id!r} is already on line {stored[call_id]}")
        else:
            stored[call_id] = reader.line_num
        calls.append(LabelledCall(line=reader.line_num, expected=expected, audio=audio, call_id=call_id or None,
                                  business_line=line, role=role, attributes=attributes))
    if not calls:
        raise QualityError(f"{path}: no labelled calls")
    return calls


def fired_rules(events: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Call id -> rule id -> its first FIRING event on the call (``fired_ms``: call offset, ``role``) and
    ``alerts``: how many times it fired there. RESOLVED events are not alerts."""
    out: dict[str, dict[str, dict[str, Any]]] = {}
    for ev in events:
        if ev["status"] != "FIRING":
            continue
        rules = out.setdefault(ev["call_id"], {})
        seen = rules.get(ev["rule_id"])
        if seen is None:
            rules[ev["rule_id"]] = {"fired_ms": int(ev["fired_ms"]), "role": ev["role"], "alerts": 1}
        else:
            seen["alerts"] += 1
    return out


def _ratio(num: int, den: int) -> float:
    return num / den if den else 0.0


def _scores(tp: int, fp: int, fn: int, tn: int) -> dict[str, Any]:
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    undefined = [name for name, den in (("precision", tp + fp), ("recall", tp + fn)) if not den]
    if not precision + recall:
        undefined.append("f1")
    return {"tp": tp, "fp": fp, "fn": fn, "tn": tn, "precision": precision, "recall": recall,
            "f1": _ratio(2 * tp, 2 * tp + fp + fn), "undefined": undefined}


def rule_report(calls: Sequence[LabelledCall], fired: Mapping[int, Mapping[str, Mapping[str, Any]]],
                rule_ids: Sequence[str], *, disabled: Collection[str] = ()) -> dict[str, Any]:
    """The evaluation of ``rule_ids`` (every rule of the file, in file order) over ``calls``.

    ``fired``: a call's line -> rule id -> what :func:`fired_rules` says of it (a call that fired nothing may be
    left out). JSON-serialisable: ``rules`` (per rule: counts, precision, recall, F1, ``undefined``,
    ``disabled``), ``micro``, ``any_alert`` and ``calls`` (per call: expected, fired, missed, extra)."""
    if not calls:
        raise QualityError("no labelled calls to evaluate")
    known = set(rule_ids)
    strays = sorted({r for f in fired.values() for r in f} - known)
    if strays:
        raise QualityError(f"rules {strays} fired but are not among the evaluated rules {list(rule_ids)}")
    counts = {r: [0, 0, 0, 0] for r in rule_ids}  # tp, fp, fn, tn
    call_level = [0, 0, 0, 0]
    table = []
    for call in calls:
        got = fired.get(call.line, {})
        for r in rule_ids:
            exp, fir = r in call.expected, r in got
            counts[r][0 if exp and fir else 1 if fir else 2 if exp else 3] += 1
        exp_any, fir_any = bool(call.expected), bool(got)
        call_level[0 if exp_any and fir_any else 1 if fir_any else 2 if exp_any else 3] += 1
        table.append({"line": call.line, "call": call.key, "source": "audio" if call.audio is not None else "history",
                      "business_line": call.business_line, "expected": sorted(call.expected),
                      "fired": {r: dict(got[r]) for r in rule_ids if r in got},
                      "missed": [r for r in rule_ids if r in call.expected and r not in got],
                      "extra": [r for r in rule_ids if r in got and r not in call.expected]})
    rules = [{"rule": r, **_scores(*counts[r]), "disabled": r in disabled} for r in rule_ids]
    micro = _scores(*(sum(c[i] for c in counts.values()) for i in range(4)))
    return {"n_calls": len(calls), "rules": rules, "micro": micro, "any_alert": _scores(*call_level),
            "calls": table}
