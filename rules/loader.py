"""Load rule files: YAML with positions -> strict models -> cross checks -> defaults resolved.

Every problem becomes a :class:`RuleFileError` with the line of the offending key.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import ValidationError

from emowatch.rules.crosscheck import cross_check
from emowatch.rules.errors import RuleFileError
from emowatch.rules.model import RuleSet, canonical_version, resolve_rule
from emowatch.rules.yamlsource import (
    dotted,
    parse_document,
    sorted_errors,
    validation_errors,
)
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
    return parse_ruleset(read_rule_file(path), str(path))


def read_rule_file(path: str | Path) -> str:
    """A rule file's text (``OSError``, bad UTF-8: a :class:`RuleFileError` at line 0)."""
    name = str(path)
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleFileError(name, 0, 0, f"cannot read rule file: {exc}",
                            errors=[RuleFileError(name, 0, 0, f"cannot read rule file: {exc}")]) from exc


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
        errors.extend(validation_errors(exc, doc, name, RuleFileError))
        return None, sorted_errors(errors)
    for path, reason in cross_check(ruleset, doc.data):
        line, col = doc.position(path)
        errors.append(RuleFileError(name, line, col, f"{dotted(path)}: {reason}"))
    if errors:
        return None, sorted_errors(errors)
    resolved = [resolve_rule(rule, ruleset.defaults) for rule in ruleset.rules]
    object.__setattr__(ruleset, "rules", resolved)  # frozen model: set once, before anyone sees it
    ruleset._version = canonical_version(doc.data)
    ruleset._source_name = name
    ruleset._source_text = text
    ruleset._positions = doc.positions
    return ruleset, []







