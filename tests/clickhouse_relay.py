"""A stand-in ClickHouse server for tests: ClickHouse's HTTP interface, answered by an embedded chDB.

Enough of the protocol for ``clickhouse_connect``'s HTTP client (what the sink uses against a server):
each request's SQL (``query`` parameter and/or body, or ``INSERT ... FORMAT`` + data) runs in chDB with the
request's settings, the answer goes back with the headers the client reads, errors as HTTP 500 with
``X-ClickHouse-Exception-Code``. It lets a test stop and start "the server" (a real listening socket that
refuses connections while stopped) to check the sink's server-mode outage and start-up handling.
"""
from __future__ import annotations

import re
import threading
import uuid
from base64 import b64decode
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

_NOT_SETTINGS = {"query", "query_id", "database", "default_format", "session_id", "session_timeout", "session_check",
                 "compress", "decompress", "user", "password", "quota_key", "buffer_size", "wait_end_of_query",
                 "enable_http_compression", "client_protocol_version", "role"}
_INSERT = re.compile(r"^\s*INSERT\s+INTO\s+(\S+?)\s*(?:\(([^)]*)\))?\s*FORMAT\s+(\w+)\s*$", re.I | re.S)
_CODE = re.compile(r"Code: (\d+)")


class ClickHouseRelay:
    def __init__(self, data_dir: Path, port: int, password: str | None = None) -> None:
        from emowatch.streams.sink.clickhouse import connect

        self.port, self.password = port, password  # password: another in the Basic auth is answered 403, code 516
        self.client = connect(None, data_dir, "default")
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None
        self.requests = 0

    def start(self) -> ClickHouseRelay:
        relay = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"  # a connection per request: once stopped, nothing is served any more

            def do_GET(self):  # noqa: N802 - ping
                self._answer(200, b"Ok.\n", {})

            def do_POST(self):  # noqa: N802
                auth = self.headers.get("Authorization", "")
                if relay.password is not None and not (
                        auth.startswith("Basic ")
                        and b64decode(auth[6:]).decode().partition(":")[2] == relay.password):
                    self._body()
                    self._answer(403, b"Code: 516. DB::Exception: emowatch: Authentication failed: password is "
                                      b"incorrect, or there is no user with such name. (AUTHENTICATION_FAILED)",
                                 {"X-ClickHouse-Exception-Code": "516"})
                    return
                url = urlsplit(self.path)
                params = dict(parse_qsl(url.query, keep_blank_values=True))
                body = self._body()
                try:
                    out, fmt = relay.run(params, body, self.headers.get("Content-Encoding"))
                except Exception as exc:  # noqa: BLE001 - answered as ClickHouse does
                    m = _CODE.search(str(exc))
                    self._answer(500, str(exc).encode(), {"X-ClickHouse-Exception-Code": m.group(1) if m else "1000"})
                    return
                self._answer(200, out, {"X-ClickHouse-Format": fmt} if fmt else {})

            def _body(self) -> bytes:
                if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                    chunks = []
                    while (size := int(self.rfile.readline().strip() or b"0", 16)) > 0:
                        chunks.append(self.rfile.read(size))
                        self.rfile.readline()
                    self.rfile.readline()
                    return b"".join(chunks)
                return self.rfile.read(int(self.headers.get("Content-Length") or 0))

            def _answer(self, code: int, body: bytes, headers: dict) -> None:
                self.send_response(code)
                for k, v in {"X-ClickHouse-Timezone": "UTC", "X-ClickHouse-Query-Id": uuid.uuid4().hex,
                             "X-ClickHouse-Summary": '{"read_rows":"0","written_rows":"0"}',
                             "Content-Length": str(len(body)), "Connection": "close", **headers}.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, name="clickhouse-relay", daemon=True).start()
        return self

    def run(self, params: dict[str, str], body: bytes, encoding: str | None) -> tuple[bytes, str | None]:
        from clickhouse_connect.driver._backend.chdb_backend import _decompress

        self.requests += 1
        settings = {k: v for k, v in params.items() if k not in _NOT_SETTINGS and not k.startswith("param_")}
        # server-side query parameters ({name:Type} in the SQL), sent as param_<name> in ClickHouse's text format
        bound = {k[len("param_"):]: _value(v) for k, v in params.items() if k.startswith("param_")}
        query = params.get("query", "")
        if encoding and encoding != "identity":
            body = _decompress(body, encoding)
        if not (query and body) and body[:6].upper() == b"INSERT" and b"\n" in body:
            head, body = body.split(b"\n", 1)  # INSERT ... FORMAT X, then its data
            query = (query + " " + head.decode()).strip()
            body = body or b""
        with self.lock:
            if (m := _INSERT.match(query)) and body:
                cols = [c.strip().strip("`\"") for c in m.group(2).split(",")] if m.group(2) else None
                self.client.raw_insert(m.group(1), cols, insert_block=body, settings=settings, fmt=m.group(3))
                return b"", None
            sql = (query + "\n" + body.decode()).strip()
            fmt = re.search(r"\bFORMAT\s+(\w+)\s*$", sql, re.I)
            database = params.get("database")  # the client's default database for unqualified names
            if database:
                self.client.database = database
            return (self.client.raw_query(sql, parameters=bound or None, settings=settings,
                                          use_database=bool(database)), fmt.group(1) if fmt else None)

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def close(self) -> None:
        self.stop()
        self.client.close()


def _value(text: str):
    """A parameter in ClickHouse's text format as the embedded client takes it: arrays as Python lists (the
    client would quote the text again), everything else as the text itself."""
    if text.startswith("["):
        import ast

        try:
            return ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
    return text
