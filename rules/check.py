"""``emowatch rules check FILE...``: validate rule files and run their examples."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from emowatch.rules.errors import RuleFileError
from emowatch.rules.examples import run_examples
from emowatch.rules.loader import load_ruleset


def check_files(paths: Iterable[str | Path]) -> list[RuleFileError]:
    """All problems in the given rule files (empty list = all valid and all examples pass)."""
    errors: list[RuleFileError] = []
    for path in paths:
        try:
            ruleset = load_ruleset(path)
        except RuleFileError as exc:
            errors.extend(exc.errors or [exc])
            continue
        errors.extend(run_examples(ruleset))
    return errors
