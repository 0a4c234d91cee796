"""The inference benchmark: streaming workload, report layout, equivalence spot check."""

from __future__ import annotations

import json

import numpy as np

from emowatch.bench.infer import FULL_PLAN, QUICK_PLAN, SHAPES, bench_model, main, stream_rounds
from emowatch.models.checkpoint import SHAPES as CKPT_SHAPES
from emowatch.models.checkpoint import model_config

REQUIRED = ("engine_audio_s_per_s", "funasr_audio_s_per_s", "ratio", "max_abs_prob_diff")


def test_stream_rounds_are_sliding_windows_per_call():
    rounds = stream_rounds(3, 2, context_s=2.0, chunk_s=1.0)
    assert [len(r) for r in rounds] == [3, 3]
    for hop in rounds:
        for w in hop:
            assert len(w.audio) == 48000 and w.emit_samples == 16000 and w.audio.dtype == np.float32
    a0, a1 = rounds[0][0].audio, rounds[1][0].audio
    assert np.array_equal(a1[:-16000], a0[16000:])  # hop 1 = hop 0 advanced by one chunk
    assert not np.array_equal(rounds[0][0].audio, rounds[0][1].audio)  # calls differ
    assert rounds[1][2].key == (2, 1)


def test_bench_model_reports_and_matches_funasr(demo_model):
    r = bench_model(demo_model, stream_rounds(3, 2), check_windows=4)
    assert all(r[k] > 0 for k in REQUIRED[:3])
    assert r["windows"] == 6 and r["equivalence_windows"] == 4
    assert r["max_abs_prob_diff"] < 1e-4 and r["max_abs_chunk_logit_diff"] < 1e-4
    assert r["batch_sizes"] == {3: 1}  # one unpadded pass per hop
    assert [x["first"] for x in r["rounds"]] == ["funasr", "engine"]  # order alternates
    # capacity: one window per call per 1 s hop
    assert abs(r["live_call_capacity"] - r["windows"] / r["engine_s"]) < 1e-9
    assert abs(r["compute_per_live_call_s"] * r["live_call_capacity"] - 1) < 1e-9
    assert abs(r["ratio"] - r["funasr_s"] / r["engine_s"]) < 1e-9
    assert r["peak_memory_mb"] > 0 and r["device"] == "cpu" and r["dtype"] == "float32"


def test_main_writes_required_json(tmp_path):
    out = tmp_path / "b" / "infer.json"
    main(quick=True, json_path=out, shapes=["demo"], calls=2)
    d = json.loads(out.read_text(encoding="utf-8"))
    res = d["results"]["demo"]
    assert all(isinstance(res[k], float) for k in REQUIRED)
    assert d["shapes"]["demo"]["results"]["ratio"] == res["ratio"]
    assert d["shapes"]["demo"]["model"]["embed_dim"] == 96
    assert d["machine"]["libraries"]["torch"] and d["machine"]["device"] == "cpu"
    assert d["config"]["plan"]["demo"] == {"calls": 2, "hops": QUICK_PLAN["demo"][1]}
    assert res["windows"] == 2 * QUICK_PLAN["demo"][1]


def test_plans_cover_every_shape_and_large_geometry():
    assert set(QUICK_PLAN) == set(FULL_PLAN) == set(SHAPES) == set(CKPT_SHAPES)
    assert FULL_PLAN["base"][0] == FULL_PLAN["large"][0] == 64
    mc = model_config("large")["model_conf"]
    assert (mc["embed_dim"], mc["num_heads"], mc["depth"]) == (1024, 16, 16)
    assert mc["modalities"]["audio"]["prenet_depth"] == 8
    assert mc["modalities"]["audio"]["num_alibi_heads"] == 16
