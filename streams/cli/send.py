"""`emowatch send FILE --call-id ID`: stream a recording to the gateway (docs/gateway.md).

Plain: the file is uploaded to ``POST /v1/calls/{id}/audio`` as it is read (a generator body, with a
progress bar), never loaded whole. ``--realtime``: it is played over ``WS /v1/calls/{id}/stream`` in
100 ms frames at real-time pace, as a softphone would, and the alerts the pipeline raises for the call
are printed as they are pushed back. Exit codes: 0 = published; 1 = refused by the gateway (its error
code is printed); 2 = invalid arguments; 3 = the gateway could not be reached.
"""
from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

from emowatch.streams.cli.common import console

FRAME_S = 0.1  # --realtime frame length
PIECE = 64 * 1024
err_console = Console(stderr=True)


def _params(file: Path, business_line: str, role: str | None, attrs: list[str], encoding: str | None,
            sample_rate: int | None, channels: int | None) -> dict[str, str]:
    enc = encoding or ("wav" if file.suffix.lower() in (".wav", ".wave") else None)
    if enc is None:
        raise ValueError(f"{file.name} is not a .wav file: give --encoding pcm_s16le|pcm_f32le, --sample-rate "
                         "and --channels")
    params = {"business_line": business_line, "encoding": enc}
    if enc != "wav":
        if sample_rate is None or channels is None:
            raise ValueError(f"--encoding {enc} needs --sample-rate and --channels")
        params.update(sample_rate=str(sample_rate), channels=str(channels))
    if role:
        params["role"] = role
    for a in attrs:
        name, sep, value = a.partition("=")
        if not sep or not name:
            raise ValueError(f"--attr {a!r}: expected name=value")
        params[f"attr.{name}"] = value
    return params


def _refused(status: int, body: bytes) -> typer.Exit:
    try:
        error = json.loads(body)["error"]
        say = f"{error['code']}: {error.get('message', '')}"
    except (ValueError, KeyError, TypeError):
        say = body[:200].decode(errors="replace")
    console.print(f"[red]refused ({status}):[/] {escape(say)}")
    return typer.Exit(1)


def _unreachable(url: str, exc: Exception) -> typer.Exit:
    console.print(f"[red]cannot reach the gateway at {escape(url)}:[/] {escape(str(exc) or type(exc).__name__)}")
    return typer.Exit(3)


def send(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True, help="A WAV file (or raw PCM)."),
    call_id: str = typer.Option(..., "--call-id", help="The call's id."),
    business_line: str = typer.Option("default", "--business-line", help="Business line (selects the rules)."),
    role: str | None = typer.Option(None, "--role", help="Mono files: CUSTOMER, AGENT or MIXED (default)."),
    attr: list[str] = typer.Option([], "--attr", help="Call attribute name=value, repeatable."),
    realtime: bool = typer.Option(False, "--realtime", help="Play over the WebSocket at real-time pace; "
                                                            "print the alerts pushed back."),
    gateway: str = typer.Option("http://127.0.0.1:8080", "--gateway", envvar="EMOWATCH_GATEWAY__PUBLIC_URL",
                                help="Gateway URL."),
    token: str | None = typer.Option(None, "--token", envvar="EMOWATCH_GATEWAY__AUTH_TOKEN",
                                     help="Bearer token, when the gateway has one."),
    encoding: str | None = typer.Option(None, "--encoding", help="Raw PCM files: pcm_s16le or pcm_f32le."),
    sample_rate: int | None = typer.Option(None, "--sample-rate", help="Raw PCM files: samples per second."),
    channels: int | None = typer.Option(None, "--channels", help="Raw PCM files: 1 or 2."),
    wait: float = typer.Option(15.0, "--wait", help="--realtime: seconds to wait for the call's last scores."),
) -> None:
    """Send a recording to the gateway as call CALL_ID (plain upload, or --realtime over a WebSocket)."""
    try:
        params = _params(file, business_line, role, attr, encoding, sample_rate, channels)
    except ValueError as exc:
        console.print(f"[red]invalid:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    base = gateway.rstrip("/")
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    if realtime:
        asyncio.run(_realtime(file, base, call_id, params, headers, wait))
    else:
        _upload(file, base, call_id, params, headers)


def _upload(file: Path, base: str, call_id: str, params: dict, headers: dict) -> None:
    import httpx

    size = file.stat().st_size
    columns = (TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn())
    with Progress(*columns, console=err_console, transient=True) as progress:
        task = progress.add_task(f"{call_id}", total=size)

        def body():
            with open(file, "rb") as f:
                while piece := f.read(PIECE):
                    progress.advance(task, len(piece))
                    yield piece

        ctype = "audio/wav" if params["encoding"] == "wav" else "application/octet-stream"
        try:
            res = httpx.post(f"{base}/v1/calls/{call_id}/audio", params=params, content=body(), timeout=600.0,
                             headers={**headers, "Content-Length": str(size), "Content-Type": ctype})
        except httpx.HTTPError as exc:
            raise _unreachable(base, exc) from None
    if res.status_code != 200:
        raise _refused(res.status_code, res.content)
    out = res.json()
    console.print(f"published {out['chunks_published']} chunks ({out['duration_ms'] / 1000:.1f} s, "
                  f"roles {', '.join(out['roles'])}) for call {escape(call_id)}; console: "
                  f"{escape(base + out['console_url'])}")


def _frames(file: Path, params: dict):
    """(bytes per 100 ms frame, bytes of the WAV header to send first) of the file."""
    from emowatch.streams.gateway.ingest import RAW_ENCODINGS, IngestError
    from emowatch.streams.gateway.wav_header import WavHeaderParser, pcm_format

    if params["encoding"] != "wav":
        fmt = pcm_format(RAW_ENCODINGS[params["encoding"]], int(params["sample_rate"]), int(params["channels"]))
        return fmt.frame_bytes * max(1, int(fmt.sample_rate * FRAME_S)), 0
    parser = WavHeaderParser()
    with open(file, "rb") as f:
        got = None
        while got is None:
            piece = f.read(4096)
            if not piece:
                raise IngestError("bad_wav_header", f"{file.name}: no WAV data chunk")
            got = parser.feed(piece)
    fmt = got[0]
    return fmt.frame_bytes * max(1, int(fmt.sample_rate * FRAME_S)), parser.header_bytes


async def _realtime(file: Path, base: str, call_id: str, params: dict, headers: dict, wait: float) -> None:
    import websockets
    from websockets.exceptions import ConnectionClosed

    from emowatch.streams.gateway.errors import ApiError

    try:
        frame, header = _frames(file, params)
    except ApiError as exc:
        console.print(f"[red]invalid:[/] {escape(str(exc))}")
        raise typer.Exit(2) from None
    query = "&".join(f"{k}={v}" for k, v in params.items())
    url = f"{base.replace('http', 'ws', 1)}/v1/calls/{call_id}/stream?{query}"
    state = {"published": 0, "roles": set(), "ended": set(), "error": None, "alerts": 0, "done": False}
    try:
        async with websockets.connect(url, additional_headers=headers, max_size=None) as ws:
            listener = asyncio.create_task(_listen(ws, state))
            await _play(ws, file, frame, header, listener)
            await ws.send(json.dumps({"type": "end"}))
            deadline = time.monotonic() + wait
            while not listener.done() and time.monotonic() < deadline:
                if state["done"] and state["ended"] >= state["roles"]:
                    break  # every chunk acknowledged and every role's last scores are in
                await asyncio.wait([listener], timeout=0.1)
            listener.cancel()
    except ConnectionClosed:
        pass
    except (OSError, websockets.InvalidHandshake, websockets.InvalidURI) as exc:
        raise _unreachable(base, exc) from None
    if state["error"]:
        console.print(f"[red]refused:[/] {escape(state['error'])}")
        raise typer.Exit(1)
    console.print(f"published {state['published']} chunks for call {escape(call_id)} in real time; "
                  f"{state['alerts']} alerts")


async def _play(ws, file: Path, frame: int, header: int, listener: asyncio.Task) -> None:
    loop = asyncio.get_running_loop()
    with open(file, "rb") as f:
        if header:
            await ws.send(f.read(header))
        start = loop.time()
        i = 0
        while piece := f.read(frame):
            if listener.done():  # the gateway refused the stream
                return
            delay = start + i * FRAME_S - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await ws.send(piece)
            i += 1


async def _listen(ws, state: dict) -> None:
    async for raw in ws:
        msg = json.loads(raw)
        kind = msg.get("type")
        if kind == "published":
            state["published"] += 1
            state["roles"].add(msg["role"])
        elif kind == "ended":
            state["done"] = True
        elif kind == "scores" and msg.get("end_of_call"):
            state["ended"].add(msg["role"])
        elif kind == "alert":
            state["alerts"] += 1
            console.print(f"[bold red]ALERT {escape(msg['status'])}[/] {escape(msg['priority'])} "
                          f"{escape(msg['rule_id'])} role={escape(msg['role'])} "
                          f"{escape('+'.join(msg.get('emotions') or []))}={msg.get('value', 0):.2f} "
                          f"at {msg.get('fired_ms', 0) / 1000:.1f} s (alert {escape(msg['alert_id'])})")
        elif kind == "error":
            state["error"] = f"{msg.get('code')}: {msg.get('message')}"
            return
