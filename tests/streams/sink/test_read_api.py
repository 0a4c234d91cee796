"""Query-parameter parsing of the history read API (pure; the routes run against the real sink in
test_history_api.py)."""
from __future__ import annotations

import pytest

from emowatch.streams.sink.read_api import BadParameter, history_routes, parse_time

MS = 1_704_164_645_678  # 2024-01-02T03:04:05.678Z


@pytest.mark.parametrize("text", [str(MS), "2024-01-02T03:04:05.678Z", "2024-01-02T03:04:05.678",
                                  "2024-01-02T03:04:05.678+00:00", "2024-01-02T04:04:05.678+01:00",
                                  " 2024-01-02 03:04:05.678z "])
def test_times_are_epoch_ms_or_iso(text):
    assert parse_time("since", text) == MS


@pytest.mark.parametrize("text", ["yesterday", "", "12:00", "2024-13-01", "1e12"])
def test_unparsable_times_name_the_parameter(text):
    with pytest.raises(BadParameter, match="^until: "):
        parse_time("until", text)


@pytest.mark.parametrize("path,query", [
    ("/v1/history/calls", {"since": ["soon"]}),
    ("/v1/history/calls", {"limit": ["1001"]}),
    ("/v1/history/calls", {"limit": ["5", "6"]}),
    ("/v1/history/alerts", {"priority": [","]}),
    ("/v1/history/alerts", {"status": ["FIRING,OPEN"]}),
])
def test_bad_parameters_are_400_before_any_query(path, query):
    handler = history_routes(reader=None)["/v1/history"]  # never reached: no ClickHouse needed
    status, body = handler(path, query)
    assert status == 400 and body["error"]["code"] == "bad_parameter"
    assert body["error"]["message"].startswith(next(iter(query)))


def test_unknown_routes_and_ids():
    handler = history_routes(reader=None)["/v1/history"]
    assert handler("/v1/history/calls/a/b", {})[0] == 404
    assert handler("/v1/history", {})[0] == 404
    status, body = handler("/v1/history/calls/" + "x" * 129, {})
    assert status == 400 and body["error"]["code"] == "invalid_call_id"
