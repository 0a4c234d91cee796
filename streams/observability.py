"""Structured logs, Prometheus metrics and a tiny /health + /metrics HTTP server."""
from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_STD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per line; ``extra={"call_id": ...}`` fields are kept as keys."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
               "msg": record.getMessage()}
        out.update({k: v for k, v in record.__dict__.items() if k not in _STD and not k.startswith("_")})
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: str = "INFO", service: str = "emowatch") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("aiokafka", "faust", "mode", "urllib3", "modelscope", "funasr", "jieba"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("emowatch").info("logging configured", extra={"service": service})


class StageMetrics:
    """The metrics every component exposes (ARCHITECTURE.md §8.10)."""

    def __init__(self, component: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        ns = "emowatch"
        self.received = Counter(f"{ns}_{component}_received", "Messages received", registry=self.registry)
        self.sent = Counter(f"{ns}_{component}_sent", "Messages sent / rows written", registry=self.registry)
        self.errors = Counter(f"{ns}_{component}_errors", "Errors by stage", ["stage"], registry=self.registry)
        self.discarded = Counter(f"{ns}_{component}_discarded", "Messages discarded (duplicates, old)",
                                 ["reason"], registry=self.registry)
        self.dlq = Counter(f"{ns}_{component}_dlq", "Messages sent to the dead-letter topic", registry=self.registry)
        self.lag = Gauge(f"{ns}_{component}_consumer_lag", "Consumer lag (messages)", registry=self.registry)

    def histogram(self, name: str, doc: str, buckets: tuple[float, ...]) -> Histogram:
        return Histogram(f"emowatch_{name}", doc, buckets=buckets, registry=self.registry)

    def gauge(self, name: str, doc: str) -> Gauge:
        return Gauge(f"emowatch_{name}", doc, registry=self.registry)

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(f"emowatch_{name}", doc, list(labels), registry=self.registry)


class HealthServer:
    """Serves ``/health`` (JSON from ``health()``; 503 when status != ok) and ``/metrics``.

    ``routes`` adds GET handlers by path prefix: ``handler(path, query) -> (status, JSON dict)`` for
    ``prefix`` and everything under ``prefix/`` (``query`` as ``urllib.parse.parse_qs`` gives it); an
    exception in a handler answers 500 ``{"error": {"code": "internal"}}``. Each request runs in its
    own thread."""

    def __init__(self, port: int, registry: CollectorRegistry, health: Callable[[], dict], host: str = "127.0.0.1",
                 routes: Mapping[str, Callable[[str, dict[str, list[str]]], tuple[int, dict]]] | None = None):
        self.started = time.time()
        outer = self
        extra = dict(routes or {})

        def route(raw: str) -> tuple[int, dict] | None:
            url = urlsplit(raw)
            for prefix, handler in extra.items():
                if url.path == prefix or url.path.startswith(prefix + "/"):
                    try:
                        return handler(url.path, parse_qs(url.query, keep_blank_values=True))
                    except Exception:  # noqa: BLE001 - one failing request must not take the server down
                        logging.getLogger("emowatch.http").exception("request failed", extra={"path": url.path})
                        return 500, {"error": {"code": "internal", "message": "the request failed; see the log"}}
            return None

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if self.path.startswith("/metrics"):
                    body, ctype, code = generate_latest(registry), CONTENT_TYPE_LATEST, 200
                elif self.path.startswith("/health"):
                    info = {"uptime_s": round(time.time() - outer.started, 1), **health()}
                    code = 200 if info.get("status") == "ok" else 503
                    body, ctype = json.dumps(info).encode(), "application/json"
                elif (found := route(self.path)) is not None:
                    code, ctype = found[0], "application/json"
                    body = json.dumps(found[1]).encode()
                else:
                    body, ctype, code = b'{"error": "not found"}', "application/json", 404
                self.send_response(code)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):  # silence default stderr access log
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, name="health-http", daemon=True)

    def start(self) -> HealthServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
