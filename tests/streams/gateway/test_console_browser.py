"""The web console in a real browser (Debian's chromium, headless) against the real gateway on the
embedded local stack: broker, inference agent (demo model), rules worker (bundled rules), ClickHouse sink
(history read API) and `emowatch worker gateway`.

(a) upload page: the bundled agitated sample -> main emotion, timeline drawn, an alert arrives live;
(b) live board: a call streamed in real time over the WebSocket is on the board, with its alert once it
    fires, and leaves the board at its end;
(c) call page: the uploaded call from history, its timeline and alerts; Ack and silence work;
(d) alerts page: lists the alert, linked to the call.
The gateway requires a bearer token: the console asks for it on the first 401 and sends it from then on.
A screenshot of each page goes to $TEST_ARTIFACTS/console/ (default .emowatch/test-artifacts/console/).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import threading
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest

from emowatch.models.timeline import EMOJI
from emowatch.streams.kafka.clients import group_name, topics_for
from emowatch.streams.local.demo import default_rules_file, demo_model_dir, wait_for_lag_zero
from emowatch.streams.local.stack import LocalStack
from emowatch.streams.resources import sample_manifest

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[3]
TIMEOUT = 240
UPLOAD_SAMPLE, LIVE_SAMPLE = "agitated_01.wav", "escalating_01.wav"  # calm for 7 s, then angry
TOKEN = uuid.uuid4().hex
RULE_IDS = {"angry-sustained", "service-break-point", "vip-tier-fearful", "agent-angry", "uncertain-review"}


def artifacts_dir() -> Path:
    base = os.environ.get("TEST_ARTIFACTS")
    folder = Path(base) / "console" if base else ROOT / ".emowatch" / "test-artifacts" / "console"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sample(file: str) -> dict:
    return next(e for e in sample_manifest() if e["file"] == file)


@pytest.fixture(scope="module")
def browser():
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("chromium and chromedriver are not installed (`make deps-system` installs Debian's "
                    "chromium and chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--window-size=1280,1000", "--disable-dev-shm-usage", "--disable-gpu"):
        opts.add_argument(arg)
    if os.geteuid() == 0:
        opts.add_argument("--no-sandbox")  # chromium refuses to run as root with its sandbox
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(driver_path), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def stack(browser, broker, tmp_path_factory):
    data = tmp_path_factory.mktemp("console")
    stack = LocalStack(data_dir=data, broker=broker, topic_prefix=f"con{uuid.uuid4().hex[:8]}.").start()
    try:
        model = {"EMOWATCH_MODEL__MODEL": str(demo_model_dir())}
        stack.start_worker("infer", ["infer"], env=model)
        stack.start_worker("rules", ["rules", "--business-line", "*", "--rules-file", str(default_rules_file())])
        sink = stack.start_worker("sink", ["sink"])
        stack.start_worker("gateway", ["gateway"],
                           env={**model, "EMOWATCH_GATEWAY__HISTORY_URL": f"http://127.0.0.1:{sink.http_port}",
                                "EMOWATCH_GATEWAY__AUTH_TOKEN": TOKEN,
                                # longer than TIMEOUT: a call can leave the live board only by its end_of_call
                                "EMOWATCH_GATEWAY__LIVE_IDLE_S": str(4 * TIMEOUT)})
        stack.wait_healthy("gateway", TIMEOUT)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="module")
def base_url(stack) -> str:
    return f"http://127.0.0.1:{stack.workers['gateway'].http_port}"


def wait(driver, condition, timeout=TIMEOUT, what=""):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(condition, message=what)


def css(driver, selector):
    from selenium.webdriver.common.by import By

    return driver.find_elements(By.CSS_SELECTOR, selector)


def screenshot(driver, name: str) -> Path:
    """A full-page screenshot (the window grown to the page's height) in the artifacts folder."""
    height = driver.execute_script("return document.documentElement.scrollHeight")
    driver.set_window_size(1280, max(1000, min(int(height) + 20, 4000)))
    path = artifacts_dir() / f"{name}.png"
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)
    print(f"screenshot: {path}")
    return path


def script_errors(driver) -> list[str]:
    """Uncaught JavaScript errors logged by the page (failed requests the page handles are not errors)."""
    return [e["message"] for e in driver.get_log("browser")
            if e["level"] == "SEVERE" and e.get("source") != "network"]


@pytest.fixture(scope="module")
def uploaded(browser, stack, base_url) -> dict:
    """(a) The upload page with the bundled agitated sample; the call id it made and what it shows."""
    from selenium.webdriver.support.ui import Select

    d = browser
    d.get(f"{base_url}/console/index.html")
    wait(d, lambda d: css(d, "#token-box:not([hidden])"), what="the page did not ask for the token on 401")
    asked = css(d, "#token-message")[0].text
    css(d, "#token-input")[0].send_keys(TOKEN)
    css(d, "#token-save")[0].click()  # kept in localStorage; the page reloads
    name = Path(UPLOAD_SAMPLE).stem
    wait(d, lambda d: css(d, f"#sample-select option[value='{name}']"), what="the samples are not listed")
    Select(css(d, "#sample-select")[0]).select_by_value(name)
    wait(d, lambda d: css(d, "#analyze-btn")[0].is_enabled(), what="the sample did not load")
    css(d, "#embeddings")[0].click()
    css(d, "#analyze-btn")[0].click()
    wait(d, lambda d: css(d, "#top-emotion[data-emotion]") or css(d, "#upload-error .error"), what="no result")
    assert not css(d, "#upload-error .error"), css(d, "#upload-error")[0].text
    wait(d, lambda d: css(d, "#timeline canvas[data-drawn='true']"), what="the timeline was not drawn")
    wait(d, lambda d: css(d, "#alerts li"), what="no alert arrived on the upload page")
    href = css(d, "#call-link")[0].get_attribute("href")
    shown = {
        "asked": asked,
        "call_id": parse_qs(urlparse(href).query)["id"][0], "call_href": href,
        "emotion": css(d, "#top-emotion")[0].get_attribute("data-emotion"),
        "top_text": css(d, "#top-emotion")[0].text,
        "bars": len(css(d, "#prob-bars .bar-row")),
        "steps": int(css(d, "#timeline canvas")[0].get_attribute("data-steps")),
        "summary": css(d, "#summary")[0].text,
        "alerts": [(li.get_attribute("data-status"), li.get_attribute("data-rule")) for li in css(d, "#alerts li")],
        "embedding": css(d, "#embedding-link")[0].get_attribute("href") if css(d, "#embedding-link") else None,
        "screenshot": screenshot(d, "upload"),
        "errors": script_errors(d),
    }
    return shown


def test_upload_page_shows_the_result_and_the_alert_as_it_fires(uploaded):
    sample = _sample(UPLOAD_SAMPLE)
    assert "401" in uploaded["asked"]
    assert uploaded["emotion"] in EMOJI
    assert EMOJI[uploaded["emotion"]] in uploaded["top_text"] and "Confidence" in uploaded["top_text"]
    assert uploaded["bars"] == len(EMOJI)
    assert uploaded["steps"] == round(sample["duration_s"] * 1000 / 200)  # one stacked bar per 200 ms
    assert uploaded["summary"].startswith("0.0–") and " s " in uploaded["summary"]
    assert uploaded["embedding"] and uploaded["embedding"].endswith(".npy")
    statuses = {s for s, _rule in uploaded["alerts"]}
    assert statuses <= {"FIRING", "RESOLVED"} and "FIRING" in statuses
    assert {rule for _s, rule in uploaded["alerts"]} <= RULE_IDS
    assert uploaded["errors"] == []


async def _stream_wav(url: str, wav: bytes, end: threading.Event, out: dict) -> None:
    """Send ``wav`` over the WebSocket in real time (100 ms of audio per 100 ms), then wait for ``end``
    (the test has seen the call on the board) before ending the call; collect the server's messages."""
    import websockets

    piece = 3200  # 100 ms of 16 kHz mono 16-bit audio
    loop = asyncio.get_running_loop()
    async with websockets.connect(url, max_size=None) as ws:
        async def reader():
            async for msg in ws:
                out["messages"].append(json.loads(msg))

        reading = asyncio.create_task(reader())
        t0 = loop.time()
        for i, off in enumerate(range(0, len(wav), piece)):
            await ws.send(wav[off:off + piece])
            await asyncio.sleep(max(0.0, t0 + (i + 1) * 0.1 - loop.time()))  # real-time pacing, not a wait
        out["sent"] = True
        await loop.run_in_executor(None, end.wait, TIMEOUT)
        await ws.send(json.dumps({"type": "end"}))
        out["ended"] = True
        deadline = loop.time() + 30  # the server answers `ended` once every chunk is acknowledged
        while not any(m.get("type") == "ended" for m in out["messages"]) and loop.time() < deadline:
            await asyncio.sleep(0.05)  # polling interval of a deadline loop
        reading.cancel()


def test_live_board_shows_a_streaming_call_with_its_alert_and_drops_it_at_its_end(browser, stack, base_url):
    d = browser
    sample = _sample(LIVE_SAMPLE)
    call_id = f"console-live-{uuid.uuid4().hex[:6]}"
    d.get(f"{base_url}/console/live.html")
    wait(d, lambda d: css(d, "#live-state[data-state='live']"), what="the live board did not connect")
    out: dict = {"messages": [], "sent": False, "ended": False}
    end = threading.Event()
    url = (f"ws://127.0.0.1:{stack.workers['gateway'].http_port}/v1/calls/{call_id}/stream"
           f"?encoding=wav&business_line={sample['business_line']}&role={sample['role']}&access_token={TOKEN}")
    streamer = threading.Thread(target=lambda: asyncio.run(_stream_wav(url, Path(sample["path"]).read_bytes(), end,
                                                                       out)), daemon=True)
    streamer.start()
    try:
        row = f"#board tr[data-call-id='{call_id}']"
        wait(d, lambda d: css(d, row), what=f"{call_id} never showed on the live board")
        assert css(d, f"{row} a.call-link")[0].get_attribute("href").endswith(f"call.html?id={call_id}")
        assert sample["business_line"] in css(d, row)[0].text
        wait(d, lambda d: int(css(d, row)[0].get_attribute("data-alerts") or 0) >= 1,
             what=f"{call_id} got angry but the board shows no active alert")
        assert "firing" in css(d, row)[0].text.lower() and float(css(d, row)[0].get_attribute("data-risk")) > 0
        screenshot(d, "live")
    finally:
        end.set()
    wait(d, lambda d: out["ended"] and not css(d, f"#board tr[data-call-id='{call_id}']"),
         what=f"{call_id} stayed on the live board after its end")
    streamer.join(TIMEOUT)
    assert out["sent"] and not [m for m in out["messages"] if m.get("type") == "error"], out["messages"][-5:]
    assert any(m.get("type") == "published" for m in out["messages"])
    assert script_errors(d) == []


def test_call_page_shows_the_uploaded_call_from_history(browser, stack, uploaded):
    kafka = stack.kafka_settings()
    t = topics_for(kafka)
    # everything about the call has been scored, judged and stored before the page is opened
    wait_for_lag_zero(stack, group_name(kafka, "emowatch-infer"), [t.audio], TIMEOUT)
    wait_for_lag_zero(stack, f"{kafka.topic_prefix}emowatch-rules-all", [t.scores], TIMEOUT)
    wait_for_lag_zero(stack, group_name(kafka, "emowatch-sink"), [t.scores, t.alerts], TIMEOUT)
    d = browser
    d.get(uploaded["call_href"])
    failed = "#call-error .error:not(:has(#retrying))"  # an error it does not retry
    wait(d, lambda d: css(d, "#timeline canvas[data-drawn='true']") or css(d, failed),
         what="the call page showed neither the call nor an error")
    assert not css(d, "#call-error .error"), css(d, "#call-error")[0].text
    assert css(d, "#call-id")[0].text == uploaded["call_id"]
    assert int(css(d, "#timeline canvas")[0].get_attribute("data-steps")) == uploaded["steps"]
    assert css(d, "#call-timelines .summary")[0].text == uploaded["summary"]  # history draws it as the upload did
    report = css(d, "#report-link")[0]  # "Report (PNG)": the gateway draws the call from history
    href = report.get_attribute("href")
    assert report.is_displayed() and href.endswith(f"/v1/calls/{uploaded['call_id']}/report.png")
    got = d.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(arguments[0], {headers: {Authorization: `Bearer ${localStorage.getItem('emowatch.token')}`}})"
        ".then(async (r) => done([r.status, r.headers.get('content-type'), (await r.arrayBuffer()).byteLength]))"
        ".catch((e) => done([0, String(e), 0]));", href)
    assert got[0] == 200 and got[1] == "image/png" and got[2] > 10_000, got
    wait(d, lambda d: css(d, "#call-alerts li"), what="the call page lists no alert")
    fired = {(li.get_attribute("data-status"), li.get_attribute("data-rule")) for li in css(d, "#call-alerts li")}
    assert {a for a in uploaded["alerts"] if a[0] == "FIRING"} <= fired
    css(d, "#call-alerts button.ack")[0].click()
    wait(d, lambda d: css(d, "#call-alerts .chip.acked"), what="the ack was not confirmed")
    css(d, "#silence-btn")[0].click()
    wait(d, lambda d: css(d, "#silence-state[data-silenced='true']") or css(d, "#silence-state .error"),
         what="the silence was neither confirmed nor refused")
    assert not css(d, "#silence-state .error"), css(d, "#silence-state")[0].text
    screenshot(d, "call")
    assert script_errors(d) == []


def test_call_page_says_clearly_when_a_call_is_unknown(browser, stack, base_url):
    d = browser
    d.get(f"{base_url}/console/call.html?id=no-such-call-{uuid.uuid4().hex[:6]}")
    wait(d, lambda d: css(d, "#call-error .error[data-status='404']"), what="no 404 shown")
    assert "unknown_call" in css(d, "#call-error")[0].text
    assert css(d, "#call")[0].get_attribute("hidden") is not None


def test_alerts_page_lists_the_alert(browser, base_url, uploaded):
    d = browser
    line = _sample(UPLOAD_SAMPLE)["business_line"]
    d.get(f"{base_url}/console/alerts.html?business_line={line}")
    row = f"#alerts-table tbody tr[data-call-id='{uploaded['call_id']}']"
    wait(d, lambda d: css(d, row) or css(d, "#alerts-error .error"), what="the alerts page listed nothing")
    assert not css(d, "#alerts-error .error"), css(d, "#alerts-error")[0].text
    statuses = {tr.get_attribute("data-status") for tr in css(d, row)}
    assert "FIRING" in statuses
    assert all(tr.text.count(line) for tr in css(d, "#alerts-table tbody tr"))  # the filter was applied
    link = css(d, f"{row} a.call-link")[0].get_attribute("href")
    assert link.endswith(f"call.html?id={uploaded['call_id']}")
    screenshot(d, "alerts")
    assert script_errors(d) == []
