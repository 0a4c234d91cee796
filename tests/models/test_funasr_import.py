"""FunASR imported without its other models: the same Emotion2vec, the same scores, a fallback.

Each case runs in a fresh interpreter, since an import happens once per process."""
from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from emowatch.models.funasr_import import FULL_IMPORT_ENV, import_funasr

# Prints a JSON line: what was imported, and FunASR's own scores of the bundled demo model for fixed audio.
_PROBE = r"""
import json, sys, logging
import numpy as np
from emowatch.models import funasr_import
if sys.argv[1] == "no-model-kept":  # a FunASR whose Emotion2vec the lean import would miss
    funasr_import.KEPT_MODELS = frozenset()
with_warning = []
class Keep(logging.Handler):
    def emit(self, record):
        with_warning.append(record.getMessage())
logging.getLogger(funasr_import.__name__).addHandler(Keep())
from emowatch.models.loader import load_model
from emowatch.streams.resources import demo_model_dir
model = load_model(str(demo_model_dir()), device="cpu", precision="fp32")
wav = (np.random.default_rng(7).standard_normal(32000) * 0.1).astype(np.float32)
utt = model.automodel.generate(input=wav, granularity="utterance", extract_embedding=False, disable_pbar=True)[0]
frm = model.automodel.generate(input=wav, granularity="frame", extract_embedding=True, disable_pbar=True)[0]
from funasr.register import tables
mods = sorted(sys.modules)
others = [m for m in mods if m.startswith("funasr.models.") and m.count(".") >= 3
          and not m.startswith("funasr.models.emotion2vec")]
print("PROBE" + json.dumps({
    "scores": [float(x) for x in utt["scores"]], "feats": np.asarray(frm["feats"]).ravel()[:4000:37].tolist(),
    "labels": list(utt["labels"]), "emotion2vec": "Emotion2vec" in tables.model_classes,
    "sklearn": "sklearn" in sys.modules, "sympy": "sympy" in sys.modules, "other_models": others,
    "trainers": [m for m in mods if m.startswith("funasr.train_utils.trainer")],
    "bin": [m for m in mods if m.startswith("funasr.bin")], "warnings": with_warning,
    "recorded_refusals": [k for k, v in __import__("funasr").get_import_errors().items() if "by emowatch" in v],
}))
"""


def _probe(mode: str, **env: str) -> dict:
    out = subprocess.run([sys.executable, "-c", _PROBE, mode], capture_output=True, text=True, timeout=300,
                         env={**os.environ, **env})
    assert out.returncode == 0, out.stderr[-3000:]
    [line] = [ln for ln in out.stdout.splitlines() if ln.startswith("PROBE")]
    return json.loads(line[len("PROBE"):])


@pytest.fixture(scope="module")
def lean() -> dict:
    return _probe("lean", **{FULL_IMPORT_ENV: "0"})


@pytest.fixture(scope="module")
def fallback() -> dict:
    return _probe("no-model-kept", **{FULL_IMPORT_ENV: "0"})


def test_lean_import_leaves_out_other_models_cli_trainers_sklearn_and_sympy(lean):
    assert lean["emotion2vec"] and not lean["warnings"]
    assert lean["other_models"] == [] and lean["bin"] == [] and lean["sklearn"] is False
    assert lean["trainers"] == [] and lean["sympy"] is False  # the training loops pull in fsdp and SymPy
    # FunASR's error messages list its recorded import failures: the refusals are not among them
    assert lean["recorded_refusals"] == []


def test_missing_emotion2vec_falls_back_to_the_full_import_with_a_warning(fallback):
    assert fallback["emotion2vec"]
    assert len(fallback["warnings"]) == 1 and "importing it in full" in fallback["warnings"][0]
    # the full import brings FunASR's other models and scikit-learn (what the lean import saves)
    assert len(fallback["other_models"]) > 50 and fallback["sklearn"] is True
    assert fallback["trainers"] and fallback["sympy"] is True


def test_lean_and_full_import_score_the_same(lean, fallback):
    assert lean["labels"] == fallback["labels"] and len(lean["scores"]) == 9
    np.testing.assert_array_equal(lean["scores"], fallback["scores"])
    np.testing.assert_array_equal(lean["feats"], fallback["feats"])


def test_a_refused_module_can_still_be_imported_later():
    code = ("from emowatch.models.funasr_import import import_funasr; import_funasr(); import sys;"
            "assert 'funasr.models.ctc.ctc' not in sys.modules;"
            "import funasr.models.ctc.ctc as m; print('OK', m.CTC.__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0 and "OK CTC" in out.stdout, out.stderr[-3000:]


def test_bad_switch_value_names_the_variable(monkeypatch):
    monkeypatch.setenv(FULL_IMPORT_ENV, "yes")
    with pytest.raises(ValueError, match=FULL_IMPORT_ENV):
        import_funasr()
