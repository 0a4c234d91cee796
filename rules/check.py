"""``emowatch rules check FILE...``: validate rule files and run their examples.

A file in the seed's format (``alert_rules.yaml``: :mod:`emowatch.rules.seed_format`) is converted
in memory first (:func:`emowatch.rules.seed_convert.convert_seed`) and the result is checked.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from emowatch.rules.errors import RuleFileError
from emowatch.rules.examples import run_examples
from emowatch.rules.loader import parse_ruleset, read_rule_file
from emowatch.rules.seed_convert import convert_seed
from emowatch.rules.seed_format import is_seed_text

SEED_NOTE = "converted from the seed's format; run `emowatch rules convert {path}` to get the emowatch file"


def check_files(paths: Iterable[str | Path], notes: list[str] | None = None) -> list[RuleFileError]:
    """All problems in the given rule files (empty list = all valid and all examples pass).

    Seed-format files are converted first; ``notes`` (when given) gets ``file: converted from the
    seed's format ...`` for each of them.
    """
    errors: list[RuleFileError] = []
    for path in paths:
        try:
            text = read_rule_file(path)
            if is_seed_text(text):
                converted = convert_seed(text, str(path))  # runs the converted file's examples
                if notes is not None:
                    notes.append(f"{path}: " + SEED_NOTE.format(path=path)
                                 + f" ({len(converted.ruleset.rules)} rule(s))")
                continue
            ruleset = parse_ruleset(text, str(path))
        except RuleFileError as exc:
            errors.extend(exc.errors or [exc])
            continue
        errors.extend(run_examples(ruleset))
    return errors
