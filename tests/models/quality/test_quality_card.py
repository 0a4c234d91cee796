"""The scenario section of the demo model card: written by train.py's template, kept in the committed card."""
from __future__ import annotations

import re

from emowatch.models.quality.degradation import DEGRADATION_WEIGHTS, degradation_table
from emowatch.models.quality.metrics import report, weighted
from emowatch.models.train import MODEL_CARD
from emowatch.streams.resources import demo_model_dir
from emowatch.topics.model_io import EMOTIONS


def _section(text: str) -> str:
    return text[text.index("## Quiet, office, phone"):text.index("## Using the real")]


def test_committed_card_has_the_templates_section_and_a_table():
    card = _section((demo_model_dir() / "MODEL_CARD.md").read_text(encoding="utf-8"))
    template = _section(MODEL_CARD).replace("\\\\", "\\")
    before, after = template.split("{degradation}")
    assert card.startswith(before) and card.endswith(after)
    table = card[len(before):len(card) - len(after)].strip().splitlines()
    assert table[0].startswith("| scenario | items | accuracy (WA) | UA | macro-F1 |")
    assert [row.split("|")[1].strip() for row in table[2:]] == [
        "quiet", "office", "phone", "weighted (quiet 0.5, office 0.3, phone 0.2)"]


def test_degradation_table_by_hand():
    classes = list(EMOTIONS)
    reps = {"quiet": report(["angry", "sad"], ["angry", "sad"], classes),
            "office": report(["angry", "sad"], ["angry", "angry"], classes),
            "phone": report(["angry", "sad"], ["fearful", "angry"], classes)}
    table = degradation_table({"scenarios": reps, "weighted": weighted(reps, DEGRADATION_WEIGHTS)})
    lines = table.splitlines()
    assert lines[0] == "| scenario | items | accuracy (WA) | UA | macro-F1 | recall angry / sad |"
    assert lines[2] == "| quiet | 2 | 1.000 | 1.000 | 1.000 | 1.00 / 1.00 |"
    assert lines[3] == "| office | 2 | 0.500 | 0.500 | 0.333 | 1.00 / 0.00 |"
    assert lines[4] == "| phone | 2 | 0.000 | 0.000 | 0.000 | 0.00 / 0.00 |"
    assert re.fullmatch(r"\| weighted \(quiet 0\.5, office 0\.3, phone 0\.2\) \| 6 \| 0\.650 \| 0\.650 \| 0\.600 \| \|",
                        lines[5])
