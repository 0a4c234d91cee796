"""emowatch.rules: the rule language (YAML -> strict models) and its pure, event-time evaluator.

No Kafka here: the rules app feeds :func:`step` one FrameScores dict at a time and
stores the returned JSON state. Reference: docs/rules.md.
"""

from emowatch.rules.check import check_files
from emowatch.rules.compiler import CompiledRuleSet, compile_ruleset
from emowatch.rules.engine import call_finished, new_state, state_size_bytes, step
from emowatch.rules.errors import RuleFileError, ScoresError
from emowatch.rules.examples import example_messages, run_example, run_examples
from emowatch.rules.lifecycle import alert_id
from emowatch.rules.loader import canonical_version, load_ruleset, parse_ruleset
from emowatch.rules.model import EMOTIONS, Rule, RuleSet

__all__ = [
    "EMOTIONS", "CompiledRuleSet", "Rule", "RuleFileError", "RuleSet", "ScoresError", "alert_id",
    "call_finished", "canonical_version", "check_files", "compile_ruleset", "example_messages",
    "load_ruleset", "new_state", "parse_ruleset", "run_example", "run_examples", "state_size_bytes", "step",
]
