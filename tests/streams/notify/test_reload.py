"""The pure pieces of the notifier's config hot reload: change detection and validation of a new file."""
from __future__ import annotations

import logging
import os

from prometheus_client import CollectorRegistry

from emowatch.streams.notify.reload import ConfigReloader, FileWatch

GOOD = "route: {receiver: ops}\nreceivers:\n  - name: ops\n    log: {}\n"
BAD = "route: {receiver: ops, bogus: 1}\nreceivers:\n  - name: ops\n    log: {}\n    nosuch: 1\n"


class Clock:
    t = 0.0

    def __call__(self) -> float:
        return self.t


def test_filewatch_sees_writes_replacements_and_removal_only_after_the_interval(tmp_path):
    cfg, sec = tmp_path / "n.yaml", tmp_path / "s.yaml"
    cfg.write_text("a: 1\n")
    clock = Clock()
    w = FileWatch([cfg, sec], 2.0, clock)  # the secrets file does not exist yet
    clock.t = 5
    assert not w.changed()
    cfg.write_text("a: 22\n")
    clock.t = 6
    assert not w.changed()  # checked at 5: the next look is at 7
    clock.t = 7
    assert w.changed() and not w.changed()
    new = tmp_path / "tmp.yaml"
    new.write_text("a: 33\n")  # same size, another inode: an editor's or a ConfigMap's atomic replace
    os.replace(new, cfg)
    clock.t = 10
    assert w.changed()
    sec.write_text("k: v\n")
    clock.t = 20
    assert w.changed()
    cfg.unlink()
    clock.t = 30
    assert w.changed()
    clock.t = 40
    assert not w.changed()


def test_reloader_logs_every_error_counts_and_keeps_them_for_health(tmp_path, caplog):
    cfg = tmp_path / "n.yaml"
    cfg.write_text(GOOD)
    reg = CollectorRegistry()
    r = ConfigReloader(cfg, None, 2.0, reg, dict)
    config, receivers = r.load()
    assert [x.name for x in config.receivers] == ["ops"] and list(receivers) == ["ops"]
    assert r.status()["result"] is None  # loading is not applying: reload_config counts the success
    cfg.write_text(BAD)
    with caplog.at_level(logging.ERROR, logger="emowatch.notify"):
        assert r.load() is None
    errors = r.status()["errors"]
    assert r.status()["result"] == "failed" and len(errors) >= 2
    assert all(e.startswith(f"{cfg}:") and e.split(":")[1].isdigit() for e in errors)
    logged = [rec.getMessage() for rec in caplog.records if rec.levelno == logging.ERROR]
    assert all(any(e in m for m in logged) for e in errors)
    assert reg.get_sample_value("emowatch_notify_config_reloads_total", {"result": "failed"}) == 1
    r.request()
    assert r.pending() and not r.pending()  # SIGHUP asks once


def test_a_missing_secret_file_is_a_failed_reload(tmp_path):
    cfg = tmp_path / "n.yaml"
    cfg.write_text(GOOD)
    r = ConfigReloader(cfg, tmp_path / "gone.yaml", 2.0, CollectorRegistry(), dict)
    assert r.load() is None and r.status()["result"] == "failed" and r.status()["errors"]
