"""The Grafana dashboard against the embedded engine: every panel's every target, expanded as Grafana and the
ClickHouse plugin would (bench/grafana_sql.py), runs over a generated history (bench/history_data.py, ~2,000
chunk rows ending now) and returns rows; the JSON is a dashboard Grafana loads (unique panel ids, a grid that
fits, the provisioned datasource everywhere); the compose stack mounts what the provisioning expects."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from emowatch.bench.grafana_sql import ALL, Expansion, expand, expanded_targets, resolve_variables, targets
from emowatch.bench.history_data import SIZES, generate
from emowatch.streams.resources import grafana_dir
from emowatch.streams.sink.clickhouse import apply_schema, connect

pytestmark = pytest.mark.integration  # the embedded ClickHouse (chDB)
DB = "emowatch"
ROOT = Path(__file__).parents[2]
DASHBOARDS = sorted((grafana_dir() / "dashboards").glob("*.json"))
RANGES = {"24h": 86_400_000, "7d": 7 * 86_400_000}
PANEL_TYPES = {"timeseries", "table", "barchart", "trend", "stat", "bargauge", "piechart", "text", "row"}


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    client = connect(None, tmp_path_factory.mktemp("grafana"), DB)
    apply_schema(client, DB)
    plan = generate(client, DB, SIZES["test"])
    yield client, plan
    client.close()


def _run(client):
    return lambda sql: client.query(sql).result_rows


@pytest.mark.parametrize("span", RANGES)
@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_every_panel_target_returns_rows(history, path, span):
    client, plan = history
    dash = _load(path)
    values = {"business_line": ALL, "agent": ALL, "call_id": None}  # the call: the first offered, as in Grafana
    x, variables = resolve_variables(dash, plan.now_ms - RANGES[span], plan.now_ms, values, _run(client))
    for name, sql in variables.items():
        assert x.options[name], f"variable {name} has no options: {sql}"
    assert x.values["call_id"] == x.options["call_id"][:1]
    expanded = expanded_targets(dash, x)
    assert len(expanded) >= 10
    for key, sql in expanded:
        assert "$" not in sql, (key, sql)  # every macro and variable expanded
        rows = client.query(sql).result_rows  # raises on a broken query
        assert rows, f"panel {key} returned no rows over the generated history ({span}):\n{sql}"


def test_panels_run_with_one_business_line_and_agent_selected(history):
    """Variables set to values instead of "All" (quoted; one with a quote in it): every target runs; the
    timelines show the chosen call, and nothing for a call that does not exist."""
    client, plan = history
    line, agent = client.query(f"SELECT business_line, agent FROM {DB}.scores WHERE call_id = {{c:String}} LIMIT 1",
                               parameters={"c": plan.typical_call}).result_rows[0]
    dash = _load(DASHBOARDS[0])
    for values in ({"business_line": [line], "agent": [agent], "call_id": plan.typical_call},
                   {"business_line": [line, "o'brien"], "agent": ALL, "call_id": "no-such-call"}):
        x, _ = resolve_variables(dash, plan.now_ms - RANGES["7d"], plan.now_ms, values, _run(client))
        assert x.options["agent"] and agent in x.options["agent"]
        for key, sql in expanded_targets(dash, x):
            rows = client.query(sql).result_rows
            if "timeline" in key:
                assert bool(rows) == (values["call_id"] == plan.typical_call), key


def test_a_broken_panel_query_fails(history):
    """The test above would catch a typo: a misspelt column or table raises on the engine."""
    client, plan = history
    dash = _load(DASHBOARDS[0])
    x, _ = resolve_variables(dash, plan.now_ms - RANGES["24h"], plan.now_ms,
                             {"business_line": ALL, "agent": ALL, "call_id": plan.typical_call}, _run(client))
    (_, sql), *_ = expanded_targets(dash, x)
    for broken in (sql.replace("business_line", "busines_line", 1), sql.replace(f"{DB}.scores", f"{DB}.score", 1)):
        assert broken != sql
        with pytest.raises(Exception, match="(?i)unknown|missing|doesn't exist|does not exist"):
            client.query(broken)


def _provisioned_datasource() -> dict:
    prov = yaml.safe_load((grafana_dir() / "provisioning" / "datasources" / "clickhouse.yaml").read_text())
    (ds,) = prov["datasources"]
    return ds


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_json_is_valid_for_grafana(path):
    dash = _load(path)
    ds = _provisioned_datasource()
    ref = {"type": ds["type"], "uid": ds["uid"]}
    assert ds["type"] == "grafana-clickhouse-datasource" and ds["jsonData"]["defaultDatabase"] == DB
    assert dash["uid"] and dash["title"] and isinstance(dash["schemaVersion"], int)
    panels = dash["panels"]
    ids = [p["id"] for p in panels]
    assert all(isinstance(i, int) for i in ids) and len(set(ids)) == len(ids), ids
    cells: set[tuple[int, int]] = set()
    for p in panels:
        assert p["type"] in PANEL_TYPES, (p["title"], p["type"])
        g = p["gridPos"]
        assert all(isinstance(g[k], int) and g[k] >= 0 for k in ("x", "y", "w", "h")), p["title"]
        assert g["w"] >= 1 and g["h"] >= 1 and g["x"] + g["w"] <= 24, p["title"]
        mine = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & mine, f"panel {p['title']!r} overlaps another"
        cells |= mine
        assert p["datasource"] == ref, p["title"]
        refs = [t["refId"] for t in p["targets"]]
        assert p["targets"] and len(set(refs)) == len(refs), p["title"]
        for t in p["targets"]:
            assert t["datasource"] == ref and t["editorType"] == "sql" and t["format"] in (0, 1), p["title"]
            assert t["queryType"] == ("timeSeries" if t["format"] == 0 else "table"), p["title"]
    names = [v["name"] for v in dash["templating"]["list"]]
    assert len(set(names)) == len(names) and {"business_line", "agent", "call_id"} <= set(names)
    for v in dash["templating"]["list"]:
        assert v["datasource"] == ref and v["type"] == "query", v["name"]
    titles = {p["title"].split(" (")[0] for p in panels}
    assert {"Calls at risk now", "Alerts over time by business line and priority", "Emotion mix per minute",
            "Top agents by customer anger", "Call timeline: customer"} <= titles
    used = {t["rawSql"] for _, t in targets(dash)}
    assert any("${call_id" in s and "emotion_steps" in s for s in used)  # the per-call timeline
    assert any("emotion_minute" in s for s in used) and any("agent" in s for s in used)


def test_compose_mounts_the_provisioning_grafana_reads():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]
    assert "grafana-clickhouse-datasource" in grafana["environment"]["GF_INSTALL_PLUGINS"]
    mounts = {m.split(":")[1]: m.split(":")[0] for m in grafana["volumes"]}
    assert mounts["/etc/grafana/provisioning"] == "./infra/grafana/provisioning"
    prov = yaml.safe_load((grafana_dir() / "provisioning" / "dashboards" / "emowatch.yaml").read_text())
    (provider,) = prov["providers"]
    assert mounts[provider["options"]["path"]] == "./infra/grafana/dashboards"
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home.startswith(provider["options"]["path"] + "/") and (ROOT / "infra/grafana/dashboards" /
                                                                    Path(home).name).is_file()
    ds = _provisioned_datasource()
    assert ds["jsonData"]["host"] == "clickhouse" and "clickhouse" in compose["services"]
    assert compose["services"]["clickhouse"]["environment"]["CLICKHOUSE_DB"] == ds["jsonData"]["defaultDatabase"]


def test_expansion_is_what_the_engine_accepts_for_every_macro(history):
    """The expander's output for each plugin macro is valid ClickHouse SQL that filters as meant."""
    client, plan = history
    x = Expansion(plan.now_ms - 3_600_000, plan.now_ms)
    sql = expand(f"SELECT count() FROM {DB}.scores WHERE $__timeFilter(ts) AND $__timeFilter_ms(ts) "
                 "AND $__dateFilter(toDate(ts)) AND $__dt(toDate(ts), ts) AND ts >= $__fromTime "
                 "AND ts <= $__toTime_ms AND $__timeInterval(ts) <= $__toTime "
                 "AND $__timeInterval_ms(ts) >= $__fromTime_ms - INTERVAL $__interval_s SECOND", x)
    (n,), = client.query(sql).result_rows
    last_hour = client.query(f"SELECT count() FROM {DB}.scores WHERE ts >= fromUnixTimestamp64Milli({x.from_ms}) "
                             f"AND ts <= fromUnixTimestamp64Milli({x.to_ms})").result_rows[0][0]
    assert n == last_hour > 0
