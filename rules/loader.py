"""Load rule files: YAML with positions -> strict models -> cross checks -> defaults resolved.

Every problem becomes a :class:`RuleFileError` with the line of the offending key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationError

from emowatch.rules.crosscheck import cross_check
from emowatch.rules.errors import RuleFileError
from emowatch.rules.model import RuleSet, canonical_version, resolve_rule
from emowatch.rules.yamlsource import SourceDoc, parse_document
from emowatch.streams.resources import rule_files


def parse_ruleset(text: str, source_name: str = "<string>") -> RuleSet:
    """Parse and validate rule-set YAML; raise :class:`RuleFileError` (all problems in ``.errors``)."""
    ruleset, errors = _parse(text, source_name)
    if errors:
        first = errors[0]
        raise RuleFileError(first.file, first.line, first.column, first.reason, errors=list(errors))
    assert ruleset is not None
    return ruleset


def load_ruleset(path: str | Path) -> RuleSet:
    """Read and parse a rule file (``OSError`` becomes a :class:`RuleFileError` at line 0)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(name, 0, 0, f"cannot read rule file: {exc}",
                            errors=[RuleFileError(name, 0, 0, f"cannot read rule file: {exc}")]) from exc
    return parse_ruleset(text, name)


def bundled_rule_files() -> list[Path]:
    """The example rule files shipped in the package (``rules/*.yaml``), sorted by name."""
    return rule_files()


def _parse(text: str, name: str) -> tuple[RuleSet | None, list[RuleFileError]]:
    doc, errors = parse_document(text, name, RuleFileError,
                                 "a rule file must be a YAML mapping with 'rule_set', 'business_line' and 'rules'")
    if doc is None:
        return None, errors
    try:
        ruleset = RuleSet.model_validate(doc.data)
    except ValidationError as exc:
        errors.extend(_from_validation(exc, doc, name))
        return None, _sorted(errors)
    for path, reason in cross_check(ruleset, doc.data):
        line, col = doc.position(path)
        errors.append(RuleFileError(name, line, col, f"{_dotted(path)}: {reason}"))
    if errors:
        return None, _sorted(errors)
    resolved = [resolve_rule(rule, ruleset.defaults) for rule in ruleset.rules]
    object.__setattr__(ruleset, "rules", resolved)  # frozen model: set once, before anyone sees it
    ruleset._version = canonical_version(doc.data)
    ruleset._source_name = name
    ruleset._source_text = text
    ruleset._positions = doc.positions
    return ruleset, []


def _from_validation(exc: ValidationError, doc: SourceDoc, name: str) -> list[RuleFileError]:
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        line, col = doc.position(loc)
        path = _data_path(loc, doc)
        msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        kind = err["type"]
        if kind == "extra_forbidden":
            reason = f"unknown key {loc[-1]!r} in {_dotted(path[:-1]) or 'the top level'}"
        elif kind == "missing":
            reason = f"missing required key {loc[-1]!r} in {_dotted(path) or 'the top level'}"
        else:
            reason = f"{_dotted(path)}: {msg}" if path else msg
        out.append(RuleFileError(name, line, col, reason))
    return out


def _data_path(loc: tuple[Any, ...], doc: SourceDoc) -> tuple[Any, ...]:
    path: tuple[Any, ...] = ()
    for part in loc:
        if path + (part,) in doc.positions:
            path += (part,)
    return path


def _dotted(path: tuple[Any, ...]) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def _sorted(errors: list[RuleFileError]) -> list[RuleFileError]:
    unique = list(dict.fromkeys(errors))
    return sorted(unique, key=lambda e: (e.line, e.column))
