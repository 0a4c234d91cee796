"""The model-I/O constants agree with the FrameScores schemas and with each other."""
import subprocess
import sys

from emowatch.topics.catalog import load_schema, versions
from emowatch.topics.model_io import EMOTIONS, FRAME_MS, FRAMES_PER_S, SAMPLE_RATE, SAMPLES_PER_FRAME


def test_every_framescores_version_defaults_to_these_values():
    for v in versions("FrameScores"):
        fields = {f["name"]: f for f in load_schema("FrameScores", v).fields}
        assert fields["frame_ms"]["default"] == FRAME_MS
        assert tuple(fields["labels"]["default"]) == EMOTIONS


def test_derived_values():
    assert (SAMPLE_RATE, FRAMES_PER_S, SAMPLES_PER_FRAME) == (16_000, 50, 320)
    assert len(EMOTIONS) == len(set(EMOTIONS)) == 9 and EMOTIONS[-1] == "unknown"


def test_importing_it_loads_no_third_party_package():
    code = ("import sys; before = set(sys.modules); import emowatch.topics.model_io; "
            "print(sorted({m.split('.')[0] for m in set(sys.modules) - before} - set(sys.stdlib_module_names)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.strip() == "['emowatch']", out
