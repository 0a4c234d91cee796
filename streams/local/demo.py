"""`emowatch demo`: the whole path on the embedded local stack, start to finish.

bundled sample calls -> audio topic -> inference agent -> scores topic -> rules worker
-> alerts topic -> ClickHouse sink -> summary queried from ClickHouse, and alerts topic -> notifier
(``infra/notify/demo.yaml``: a log receiver + the demo's own signed webhook receiver, one
``delivered`` line per delivery).
"""
from __future__ import annotations

import shutil
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from emowatch.streams.kafka.admin import group_lag
from emowatch.streams.kafka.audio_publisher import AudioPublisher, CallSpec, call_records
from emowatch.streams.kafka.tail import TopicTail
from emowatch.streams.local.demo_webhook import DemoWebhook
from emowatch.streams.local.stack import LocalStack
from emowatch.streams.resources import (  # noqa: F401
    default_rules_file,
    demo_model_dir,
    notify_demo_config,
    sample_manifest,
    samples_dir,
)


def load_calls(manifest: Path | None = None) -> list[CallSpec]:
    """The calls of a sample manifest (default: the bundled sample calls)."""
    return [CallSpec(call_id=e["call_id"], path=Path(e["path"]), business_line=e.get("business_line", "default"),
                     role=e.get("role", "MIXED"), attributes=e.get("attributes")) for e in sample_manifest(manifest)]


@dataclass
class DemoResult:
    chunks_sent: int
    scores: list[dict]
    alerts: list[dict]
    summary: list[tuple]
    summary_columns: list[str]
    data_dir: Path
    dlq: list = field(default_factory=list)


SUMMARY_SQL = """
SELECT c.call_id, c.business_line, c.chunks, c.top_emotion, round(c.top_prob, 3) AS top_prob,
       countIf(a.status = 'FIRING') AS alerts_fired, arrayStringConcat(groupUniqArray(a.rule_id), ',') AS rules
FROM {db}.calls AS c
LEFT JOIN (SELECT * FROM {db}.alerts FINAL) AS a ON a.call_id = c.call_id
GROUP BY c.call_id, c.business_line, c.chunks, c.top_emotion, c.top_prob
ORDER BY c.call_id
"""


def start_pipeline(stack: LocalStack, *, model_dir: Path, rules_file: Path, business_line: str = "*",
                   rules: bool = True, gateway: bool = True, gateway_port: int | None = None) -> str | None:
    """Start infer, sink, rules (and the gateway, whose console reads history from the sink's read API);
    returns the console URL when the gateway runs."""
    stack.start_worker("infer", ["infer"], env={"EMOWATCH_MODEL__MODEL": str(model_dir)})
    sink = stack.start_worker("sink", ["sink"])
    if rules:
        name = "rules-all" if business_line == "*" else f"rules-{business_line}"
        stack.start_worker(name, ["rules", "--business-line", business_line, "--rules-file", str(rules_file)])
    if not gateway:
        return None
    gw = stack.start_worker("gateway", ["gateway"], port=gateway_port,
                            env={"EMOWATCH_MODEL__MODEL": str(model_dir),
                                 "EMOWATCH_GATEWAY__HISTORY_URL": f"http://127.0.0.1:{sink.http_port}"})
    stack.wait_healthy("gateway", 120)
    return f"http://127.0.0.1:{gw.http_port}/console/"


def wait_for_lag_zero(stack: LocalStack, group: str, topics: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        stack.check_workers()
        lag = group_lag(stack.bootstrap, group, topics)
        if all(v == 0 for v in lag.values()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"group {group} still has lag {lag} after {timeout_s}s")
        time.sleep(0.2)


def query_summary(data_dir: Path, database: str = "emowatch") -> tuple[list[str], list[tuple]]:
    from emowatch.streams.sink.clickhouse import connect

    client = connect(None, data_dir, database)
    try:
        res = client.query(SUMMARY_SQL.replace("{db}", database))
        return list(res.column_names), [tuple(r) for r in res.result_rows]
    finally:
        client.close()


def start_notifier(stack: LocalStack, data_dir: Path, console: Console, print_lock: threading.Lock) -> DemoWebhook:
    """The notifier worker with ``infra/notify/demo.yaml``, delivering to a local signed webhook receiver
    started here; prints a ``delivered`` line per delivery it receives (from the receiver's thread, under
    ``print_lock``, so that a line never lands inside the progress bar's last render)."""

    def delivered(body: dict, signed: bool) -> None:
        ids = ",".join(str(a.get("alert_id", ""))[:12] for a in body.get("alerts", []))
        with print_lock:
            console.print(f"[cyan]delivered[/] {body.get('status', '?'):8} {body.get('group_key', '?')} "
                          f"alerts={ids} repeat={body.get('repeat')} signature={'ok' if signed else 'BAD'}")

    hook = DemoWebhook(delivered).start()
    secret_file = data_dir / "notify-secrets.yaml"
    secret_file.write_text(f"demo_hmac: {hook.secret}\n")
    secret_file.chmod(0o600)
    stack.start_worker("notify", ["notify", "--config", str(notify_demo_config())],
                       env={"EMOWATCH_NOTIFY__SECRETS_FILE": str(secret_file), "NOTIFY_DEMO_PORT": str(hook.port)})
    # Wait until the notifier owns the alerts partitions: the demo streams faster than real time, and a
    # notifier that joins late reads an episode's FIRING and RESOLVED together and, like Alertmanager,
    # sends nothing for an alert that resolved before its group's first notification.
    stack.wait_healthy("notify", 120, ready=lambda h: h.get("assigned_partitions", 0) > 0)
    return hook


def upload_calls(base_url: str, calls: list[CallSpec]) -> int:
    """POST each call's WAV to the gateway (``/v1/calls/{id}/audio``), all at once; chunks published."""
    import httpx

    def one(c: CallSpec) -> int:
        params = {"business_line": c.business_line, "role": c.role,
                  **{f"attr.{k}": v for k, v in (c.attributes or {}).items()}}
        with open(c.path, "rb") as body:
            r = httpx.post(f"{base_url}/v1/calls/{c.call_id}/audio", params=params, content=body, timeout=120,
                           headers={"Content-Type": "audio/wav"})
        if r.status_code != 200:
            raise RuntimeError(f"gateway refused {c.call_id}: {r.status_code} {r.text[:300]}")
        return int(r.json()["chunks_published"])

    with ThreadPoolExecutor(max_workers=max(1, len(calls))) as pool:
        return sum(pool.map(one, calls))


def run_demo(*, data_dir: Path, rules_file: Path | None = None, model_dir: Path | None = None,
             manifest: Path | None = None, realtime: float = 0.0, timeout_s: float = 600.0,
             console: Console | None = None) -> DemoResult:
    console = console or Console()
    rules_file = rules_file or default_rules_file()
    model_dir = model_dir or demo_model_dir()
    calls = load_calls(manifest)
    if data_dir.exists():
        shutil.rmtree(data_dir)
    expected = sum(len(call_records(c, start_time_ms=0)) for c in calls)
    console.print(f"[bold]emowatch demo[/]: {len(calls)} calls, {expected} one-second chunks, model {model_dir}, "
                  f"rules {rules_file}")
    with LocalStack(data_dir=data_dir) as stack:
        kafka = stack.kafka_settings()
        console.print(f"local broker on {stack.bootstrap} (tansu); data in {data_dir}")
        console_url = start_pipeline(stack, model_dir=model_dir, rules_file=rules_file)
        console.print(f"gateway and console on [cyan]{console_url}[/] (while the demo runs)")
        print_lock = threading.Lock()
        hook = start_notifier(stack, data_dir, console, print_lock)
        from emowatch.streams.kafka.clients import topics_for

        t = topics_for(kafka)
        tail = TopicTail(kafka, {t.scores: "FrameScores", t.alerts: "Alert", t.dlq: "DeadLetter"})
        if realtime > 0:  # paced: straight to the audio topic, as a recorder publishing live would
            sent = AudioPublisher(kafka).publish_calls(calls, realtime=realtime)
        else:  # as fast as possible, through the gateway: the way a recording comes in
            sent = upload_calls(console_url.removesuffix("/console/"), calls)

        def show(topic: str, rec: dict | None) -> None:
            if topic == t.scores:
                progress.advance(task)
            elif topic == t.alerts and rec is not None:
                colour = "red" if rec["status"] == "FIRING" else "green"
                console.print(f"[{colour}]{rec['status']:8}[/] {rec['call_id']:<16} {rec['rule_id']:<22} "
                              f"{'+'.join(rec['emotions'])}={rec['value']:.2f} (>{rec['threshold']}) "
                              f"at {rec['fired_ms'] / 1000:.1f}s  [{rec['priority']}] id={rec['alert_id'][:12]}")
            elif topic == t.dlq:
                console.print(f"[yellow]DLQ[/] {rec}")

        progress = Progress(TextColumn("scoring chunks"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                            console=console, transient=False)
        progress.start()
        try:
            task = progress.add_task("score", total=sent)
            got = tail.collect(lambda o: len(o[t.scores]) >= sent, timeout_s, on_record=show,
                               check=stack.check_workers)
        finally:
            with print_lock:  # the bar's last render and its newline are two writes (seen: "0:00:03delivered ...")
                progress.stop()
        rules_group = f"{stack.topic_prefix}emowatch-rules-all"
        wait_for_lag_zero(stack, rules_group, [t.scores], timeout_s)
        tail.catch_up(got, timeout_s, on_record=show)  # the last alerts
        wait_for_lag_zero(stack, "emowatch-sink", [t.scores, t.alerts], timeout_s)
        wait_for_lag_zero(stack, "emowatch-notify", [t.alerts], timeout_s)  # committed = delivered and logged
        tail.close()
        stack.stop_worker("notify")
        hook.stop()
        stack.stop_worker("sink")  # releases the embedded ClickHouse (one process per path)
        cols, rows = query_summary(data_dir)
    table = Table(title="Summary (queried from ClickHouse)")
    for c in cols:
        table.add_column(c)
    for r in rows:
        table.add_row(*[str(x) for x in r])
    console.print(table)
    alerts = [a for a in got[t.alerts] if a]
    console.print(f"{sent} chunks -> {len(got[t.scores])} score messages, {len(alerts)} alert events, "
                  f"{len(got[t.dlq])} dead letters, {hook.count} notifications delivered")
    worst = max(rows, key=lambda r: r[cols.index("alerts_fired")], default=None) if "alerts_fired" in cols else None
    call = worst[cols.index("call_id")] if worst else "CALL_ID"
    console.print(f"the history stays in {data_dir}: try [cyan]emowatch query agents --data-dir {data_dir}[/], "
                  f"[cyan]emowatch query alerts --data-dir {data_dir}[/] or "
                  f"[cyan]emowatch report call {call} --data-dir {data_dir} --png call.png[/]")
    return DemoResult(sent, got[t.scores], alerts, rows, cols, data_dir, got[t.dlq])
