import pytest

from emowatch.streams.settings import SettingsError, load_settings


def test_env_is_read_explicitly_and_nested():
    s = load_settings({"EMOWATCH_KAFKA__BOOTSTRAP_SERVERS": "b:9092", "EMOWATCH_INFER__MAX_BATCH": "16",
                       "HOME": "/root"})
    assert s.kafka.bootstrap_servers == "b:9092" and s.infer.max_batch == 16
    assert s.model.model == "iic/emotion2vec_plus_large"


@pytest.mark.parametrize("env,name", [
    ({"EMOWATCH_KAFKA__BOOSTRAP_SERVERS": "x"}, "EMOWATCH_KAFKA__BOOSTRAP_SERVERS"),
    ({"EMOWATCH_INFER__MAX_BATCH": "0"}, "EMOWATCH_INFER__MAX_BATCH"),
    ({"EMOWATCH_SINK__CLICKHOUSE_URL": "tcp://x"}, "EMOWATCH_SINK__CLICKHOUSE_URL"),
    ({"EMOWATCH_KAFKA": "x"}, "EMOWATCH_KAFKA"),
    ({"EMOWATCH_SINK__CLUSTER": "emo"}, "EMOWATCH_SINK__CLUSTER"),  # a cluster needs a server URL
    ({"EMOWATCH_SINK__CLUSTER": "emo'; DROP", "EMOWATCH_SINK__CLICKHOUSE_URL": "http://ch:8123"},
     "EMOWATCH_SINK__CLUSTER"),
    ({"EMOWATCH_SINK__REPLICA_PATH": "/clickhouse/tables/{table}"}, "EMOWATCH_SINK__REPLICA_PATH"),  # no {shard}
    ({"EMOWATCH_INFER__VAD": "pyannote"}, "EMOWATCH_INFER__VAD"),
    ({"EMOWATCH_INFER__VAD_WEBRTC_MODE": "4"}, "EMOWATCH_INFER__VAD_WEBRTC_MODE"),
    ({"EMOWATCH_INFER__VAD_CONTEXT_MS": "-1"}, "EMOWATCH_INFER__VAD_CONTEXT_MS"),
    ({"EMOWATCH_SINK__CLUSTER": "emo", "EMOWATCH_SINK__CLICKHOUSE_URL": "http://ch:8123",
      "EMOWATCH_SINK__DATABASE": "emo-watch"}, "EMOWATCH_SINK__DATABASE"),
])
def test_bad_config_fails_fast_naming_the_setting(env, name):
    with pytest.raises(SettingsError) as ei:
        load_settings(env)
    assert name in str(ei.value)


def test_a_cluster_with_a_server_url_is_accepted():
    s = load_settings({"EMOWATCH_SINK__CLUSTER": "emo-prod.1", "EMOWATCH_SINK__CLICKHOUSE_URL": "http://ch:8123"})
    assert s.sink.cluster == "emo-prod.1" and s.sink.replica_path == "/clickhouse/tables/{shard}/{database}/{table}"
    assert load_settings({}).sink.cluster is None


def test_secrets_are_not_in_the_dump():
    s = load_settings({"EMOWATCH_KAFKA__SASL_PASSWORD": "hunter2", "EMOWATCH_KAFKA__SASL_USERNAME": "u",
                       "EMOWATCH_KAFKA__SECURITY_PROTOCOL": "SASL_SSL",
                       "EMOWATCH_KAFKA__SASL_MECHANISM": "SCRAM-SHA-512"})
    assert "hunter2" not in str(s.model_dump(mode="json")) and "hunter2" not in repr(s)
    assert s.kafka.security()["sasl.password"] == "hunter2"


def test_configuration_doc_is_generated_from_the_settings_model():
    """docs/configuration.md is what docs/gen_configuration.py writes (regenerate it after a settings change)."""
    import runpy
    from pathlib import Path

    from emowatch.streams.settings import settings_reference

    docs = Path(__file__).parents[2] / "docs"
    render = runpy.run_path(str(docs / "gen_configuration.py"))["render"]
    doc = (docs / "configuration.md").read_text()
    assert all(f"`{name}`" in doc for name, _default, _type in settings_reference())
    assert doc == render(), "docs/configuration.md is stale: run python docs/gen_configuration.py"


def test_voice_activity_settings():
    assert (load_settings({}).infer.vad, load_settings({}).infer.vad_context_ms) == ("silero", 256)
    s = load_settings({"EMOWATCH_INFER__VAD": "webrtc", "EMOWATCH_INFER__VAD_WEBRTC_MODE": "3"})
    assert (s.infer.vad, s.infer.vad_webrtc_mode) == ("webrtc", 3)


def test_the_suites_own_switches_are_outside_the_settings_namespace():
    """Settings refuse an unknown EMOWATCH_* name (a typo fails fast), so a switch of the test suite in that
    namespace breaks every in-process CLI run of the suite: `make test-full` once set EMOWATCH_FULL=1, and 69
    tests failed with "unknown setting(s) EMOWATCH_FULL". Every EMOWATCH_* name the suite reads from the
    environment or the Makefile sets must be a setting."""
    import re

    from conftest import ROOT

    names = set(re.findall(r"\b(EMOWATCH_[A-Z0-9_]+)=", (ROOT / "Makefile").read_text()))
    for path in (ROOT / "tests").rglob("*.py"):
        names |= set(re.findall(r"environ(?:\.get\(|\[)\s*[\"'](EMOWATCH_[A-Z0-9_]+)[\"']", path.read_text()))
    refused = []
    for name in sorted(names):
        try:
            load_settings({name: "1"})
        except SettingsError as exc:
            if "unknown setting" in str(exc):
                refused.append(name)
    assert refused == []
    assert "TEST_FULL=1" in (ROOT / "Makefile").read_text()  # the full-size switch the suite reads
