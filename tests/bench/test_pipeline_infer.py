import pytest

from emowatch.bench.pipeline_infer import LoadGen, _bucket_quantile, _sample_chunks


def test_bucket_quantile_reads_the_histogram_delta_between_scrapes():
    m0 = {"lat_le_0.1": 10.0, "lat_le_0.5": 10.0, "lat_le_1.0": 10.0, "lat_le_+Inf": 10.0}
    m1 = {"lat_le_0.1": 60.0, "lat_le_0.5": 108.0, "lat_le_1.0": 109.0, "lat_le_+Inf": 110.0}
    assert _bucket_quantile(m0, m1, 0.5) == 0.1
    assert _bucket_quantile(m0, m1, 0.98) == 0.5
    assert _bucket_quantile(m0, m1, 0.995) == float("inf")
    assert _bucket_quantile(m1, m1, 0.5) is None


def test_load_generator_sends_each_call_in_seq_order_with_end_of_call(monkeypatch):
    monkeypatch.setattr("emowatch.bench.pipeline_infer.time.sleep", lambda s: None)  # no pacing in the test

    class Pub:
        def __init__(self):
            self.recs = []

        def send(self, rec):
            self.recs.append(rec)

        def flush(self):
            pass

    chunks = _sample_chunks()
    assert all(len(c) >= 6 and all(len(b) == 32000 for b in c) for c in chunks)
    gen = LoadGen(Pub(), "t", calls=3, seconds=4, chunks=chunks)
    gen.run()
    assert gen.error is None and len(gen.sent) == 12
    for cid in gen.ids:
        recs = [r for r in gen.pub.recs if r["call_id"] == cid]
        assert [r["seq"] for r in recs] == [0, 1, 2, 3]
        assert [r["end_of_call"] for r in recs] == [False, False, False, True]
    # calls are staggered: the first chunks of the three calls are sent before any second chunk
    assert [r["seq"] for r in gen.pub.recs[:3]] == [0, 0, 0]


@pytest.mark.parametrize("q", [0.5, 0.99])
def test_bucket_quantile_empty_is_none(q):
    assert _bucket_quantile({}, {}, q) is None


def test_compare_vads_reports_added_cpu_per_chunk_per_step():
    from emowatch.bench.pipeline_infer import compare_vads

    def rep(*steps):
        return {"steps": [{"calls": c, "cpu_per_call": cpu, "vad_ms_per_chunk": v, "sustained": ok}
                          for c, cpu, v, ok in steps]}

    rows = compare_vads({"off": rep((16, 0.0100, 0.02, True), (32, 0.0090, 0.02, True)),
                         "silero": rep((16, 0.0112, 0.9, True))})  # stopped earlier: no 32-call row for it
    assert rows[0] == {"calls": 16, "off_cpu_ms_per_chunk": 10.0, "off_vad_ms_per_chunk": 0.02,
                       "off_sustained": True, "silero_cpu_ms_per_chunk": 11.2, "silero_vad_ms_per_chunk": 0.9,
                       "silero_sustained": True, "silero_added_cpu_ms_per_chunk": 1.2}
    assert rows[1] == {"calls": 32, "off_cpu_ms_per_chunk": 9.0, "off_vad_ms_per_chunk": 0.02,
                       "off_sustained": True}


def test_vad_target_is_a_ratio_of_the_same_run():
    from emowatch.bench.pipeline_infer import vad_target

    machine = {"cpu": "AMD EPYC", "libraries": {"torch": "2.13.0"}}
    ok = vad_target({"off": {"sustained_calls": 112, "machine": machine}, "silero": {"sustained_calls": 104}})
    assert ok["machine"] == machine and ok["target"]["sustained_over_off"] == {"off": 1.0, "silero": 0.929}
    assert ok["target"]["met"] is True
    low = vad_target({"off": {"sustained_calls": 112, "machine": machine}, "silero": {"sustained_calls": 96}})
    assert low["target"]["met"] is False
