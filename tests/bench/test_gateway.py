"""`emowatch bench gateway`: the histogram arithmetic, and one ramp step at a very small size against a
gateway on the test broker (client processes and all)."""
from __future__ import annotations

import pytest

from emowatch.bench.gateway import delay_buckets, quantile, run_step

BEFORE = [(0.05, 10.0), (0.1, 10.0), (0.2, 10.0), (float("inf"), 10.0)]
AFTER = [(0.05, 60.0), (0.1, 105.0), (0.2, 109.0), (float("inf"), 110.0)]


def test_quantile_between_two_readings_is_interpolated_in_its_bucket():
    assert quantile(BEFORE, AFTER, 0.5) == {"count": 100, "p": 0.05, "within_100ms": 0.95}
    q = quantile(BEFORE, AFTER, 0.97)
    assert 0.1 < q["p"] < 0.2 and abs(q["p"] - (0.1 + 0.1 * (97 - 95) / 4)) < 1e-9
    assert quantile(BEFORE, AFTER, 0.999)["p"] == 0.2  # in the +Inf bucket: its lower bound
    assert quantile(AFTER, AFTER, 0.99) == {"count": 0, "p": None, "within_100ms": None}


def test_buckets_are_read_from_a_metrics_page():
    text = ('# HELP emowatch_gateway_publish_delay_seconds x\n# TYPE emowatch_gateway_publish_delay_seconds histogram\n'
            'emowatch_gateway_publish_delay_seconds_bucket{le="0.1"} 3.0\n'
            'emowatch_gateway_publish_delay_seconds_bucket{le="+Inf"} 4.0\n'
            'emowatch_gateway_publish_delay_seconds_count 4.0\nemowatch_gateway_publish_delay_seconds_sum 0.3\n')
    assert delay_buckets(text) == [(0.1, 3.0), (float("inf"), 4.0)]
    assert delay_buckets("") == []


@pytest.mark.integration
def test_one_small_step_through_a_real_gateway(kafka_settings, topics):
    from emowatch.streams.gateway.service import Gateway
    from emowatch.streams.settings import GatewaySettings, Settings

    gw = Gateway(Settings(kafka=kafka_settings, gateway=GatewaySettings(http_port=0))).start_in_thread()
    try:
        step = run_step(gw.url, calls=3, seconds=2, processes=1, tag="t")
    finally:
        gw.stop()
    assert step["chunks_expected"] == 6 and step["chunks_acked"] == 6 and step["failed_calls"] == 0
    # one observation per ack the clients got: 6 chunks, plus a 20 ms end marker for each call whose end came
    # after the live grace had released its last chunk (under load)
    assert step["gateway_observations"] == step["published_messages"] and 6 <= step["published_messages"] <= 9
    assert step["gateway_p99_publish_delay_ms"] > 0
    assert step["e2e_ack_p99_ms"] > 0 and 0 <= step["frames_on_pace"] <= 1
