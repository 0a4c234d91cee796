import threading

import numpy as np
import pytest

from emowatch.streams.infer.batcher import Batcher
from emowatch.streams.infer.model_runner import ModelRunner


def make_batch(items):
    b = Batcher(max_batch=len(items), max_wait_ms=0, capacity=max(1, len(items)))
    futs = [b.put(x) for x in items]
    return b.pop_batch(), futs


@pytest.mark.parametrize("threaded", [False, True])
def test_runs_a_batch_and_resolves_each_future(threaded):
    runner = ModelRunner(lambda xs: [x * 2 for x in xs], threaded=threaded)
    batch, futs = make_batch([1, 2, 3])
    runner.submit(batch)
    assert runner.busy
    with pytest.raises(RuntimeError, match="busy"):
        runner.submit(batch)
    done = runner.wait(timeout=10)
    assert done.results == [2, 4, 6] and done.error is None and done.model_s >= 0
    assert [f.result(timeout=0) for f in futs] == [2, 4, 6]
    assert not runner.busy and runner.completed() == []
    runner.close()


def test_model_runs_on_its_own_thread_and_the_caller_is_not_blocked():
    release = threading.Event()
    seen = []

    def fn(xs):
        seen.append(threading.current_thread().name)
        release.wait(10)
        return list(xs)

    runner = ModelRunner(fn, threaded=True, name="model-x")
    batch, futs = make_batch(["a"])
    runner.submit(batch)
    assert runner.completed() == [] and runner.busy  # still computing: the poll thread goes on
    release.set()
    assert runner.wait(timeout=10).results == ["a"]
    assert seen == ["model-x"]
    runner.close()


def test_a_failing_model_fails_the_batch_not_the_runner():
    def fn(xs):
        if "boom" in xs:
            raise ValueError("bad batch")
        return list(xs)

    runner = ModelRunner(fn, threaded=True)
    batch, futs = make_batch(["boom", "x"])
    runner.submit(batch)
    done = runner.wait(timeout=10)
    assert done.results is None and isinstance(done.error, ValueError)
    assert all(isinstance(f.exception(timeout=0), ValueError) for f in futs)
    batch, futs = make_batch(["ok"])
    runner.submit(batch)
    assert runner.wait(timeout=10).results == ["ok"] and runner.alive
    runner.close()


def test_wrong_result_count_is_an_error():
    runner = ModelRunner(lambda xs: [1], threaded=False)
    batch, _ = make_batch([1, 2])
    runner.submit(batch)
    assert "2 items" in str(runner.completed()[0].error)


def test_demo_engine_scores_valid_windows_and_returns_item_errors_for_invalid_ones_in_one_batch():
    """INFER-stage per-item errors: one bad window does not fail the batch."""
    from emowatch.models.engine import ItemError, Result, Window
    from emowatch.models.loader import load_model
    from emowatch.streams.local.demo import demo_model_dir

    engine = load_model(str(demo_model_dir())).engine()
    rng = np.random.default_rng(0)
    windows = [np.asarray(rng.normal(0, 0.1, 48000), np.float32), np.zeros(160, np.float32),
               np.asarray(rng.normal(0, 0.1, 16000), np.float32), np.asarray(rng.normal(0, 0.1, 32160), np.float32)]
    emit = [16000, 160, 16000, 160]
    runner = ModelRunner(lambda refs: engine.infer_batch([Window(i, w, e) for i, (w, e) in enumerate(refs)]),
                         threaded=True)
    batch, _ = make_batch(list(zip(windows, emit)))
    runner.submit(batch)
    res = runner.wait(timeout=60).results
    runner.close()
    assert [type(r) for r in res] == [Result, ItemError, Result, ItemError]
    assert res[1].code == "too_short" and res[3].code == "too_short"
    assert res[0].logits.shape == (50, 9) and res[2].logits.shape == (50, 9)
