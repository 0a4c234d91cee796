"""`emowatch demo` and `emowatch up`: the embedded local stack (streams/local), imported only when they run."""
from __future__ import annotations

import signal
import threading
from pathlib import Path

import typer

from emowatch.streams.cli.common import console, settings_or_exit


def demo(
    data_dir: Path = typer.Option(Path(".emowatch/demo"),
                                  help="Where the demo keeps ClickHouse data and logs (wiped first)."),
    rules_file: Path | None = typer.Option(None, help="Rule file (default: the bundled rules/default.yaml)."),
    realtime: float = typer.Option(0.0, help="Pace the sample calls (1.0 = real time; 0 = as fast as possible, "
                                             "uploaded through the gateway)."),
    timeout_s: float = typer.Option(600.0, help="Give up after this many seconds."),
) -> None:
    """Stream the bundled sample calls through the whole pipeline on the embedded local stack."""
    from emowatch.streams.local.demo import run_demo

    settings_or_exit()  # fail fast on bad EMOWATCH_* variables
    result = run_demo(data_dir=data_dir, rules_file=rules_file, realtime=realtime, timeout_s=timeout_s, console=console)
    if len(result.scores) != result.chunks_sent:
        raise typer.Exit(1)


def up(
    data_dir: Path = typer.Option(Path(".emowatch/local"), help="ClickHouse data and logs (kept between runs)."),
    rules_file: Path | None = typer.Option(None, help="Rule file of the catch-all rules worker."),
    model: str | None = typer.Option(None, help="Model hub id or directory (default: the bundled demo model)."),
    partitions: int = typer.Option(4, help="Partitions of every topic."),
    port: int = typer.Option(8080, help="Port of the gateway and its web console (the seed's 8080; "
                                        "a free port when it is taken)."),
) -> None:
    """Start the local broker, create the topics and run infer + rules + sink + gateway until Ctrl-C."""
    from emowatch.streams.local.broker import port_is_free
    from emowatch.streams.local.demo import start_pipeline
    from emowatch.streams.local.stack import LocalStack
    from emowatch.streams.resources import default_rules_file, demo_model_dir

    settings_or_exit()
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with LocalStack(data_dir=data_dir, partitions=partitions) as stack:
        url = start_pipeline(stack, model_dir=Path(model) if model else demo_model_dir(),
                             rules_file=rules_file or default_rules_file(),
                             gateway_port=port if port_is_free(port) else None)
        console.print(f"[bold]emowatch is up[/]: bootstrap [cyan]{stack.bootstrap}[/], data {data_dir}")
        console.print(f"[bold]console[/]: [cyan]{url}[/]   (send a call: emowatch send FILE.wav --call-id ID "
                      f"--gateway {url.removesuffix('/console/')})")
        for name, w in stack.workers.items():
            console.print(f"  {name:<10} pid {w.proc.pid:<7} http://127.0.0.1:{w.http_port}/health  log {w.log_path}")
        console.print(f"Publish calls with EMOWATCH_KAFKA__BOOTSTRAP_SERVERS={stack.bootstrap}; "
                      "Ctrl-C stops everything.")
        while not stop.wait(1.0):
            stack.check_workers()
    console.print("stopped")
