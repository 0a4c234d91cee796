"""`emowatch bench` commands."""
from __future__ import annotations

from pathlib import Path

import typer

from emowatch.streams.cli.common import console  # noqa: F401

bench_app = typer.Typer(no_args_is_help=True, help="Benchmarks (results are reported, never asserted).")


QUICK = typer.Option(False, "--quick", help="Reduced size (what `make bench` and CI-sized runs use).")
JSON = typer.Option(None, "--json", help="Write the results as JSON to this file.")


@bench_app.command("infer")
def bench_infer(quick: bool = QUICK, json_path: Path | None = JSON) -> None:
    """Batched engine vs a loop over FunASR AutoModel.generate, per model shape."""
    from emowatch.bench.infer import main

    main(quick=quick, json_path=json_path)


@bench_app.command("pipeline-infer")
def bench_pipeline_infer(quick: bool = QUICK, json_path: Path | None = JSON,
                         vad: str | None = typer.Option(
                             None, "--vad", help="Comma-separated EMOWATCH_INFER__VAD values (off,silero,webrtc): "
                                                 "one run each in this invocation, compared per load step.")) -> None:
    """Simulated real-time calls through broker + inference agent (demo model)."""
    from emowatch.bench.pipeline_infer import main

    main(quick=quick, json_path=json_path, vads=[v.strip() for v in vad.split(",") if v.strip()] if vad else None)


@bench_app.command("pipeline")
def bench_pipeline(quick: bool = QUICK, json_path: Path | None = JSON,
                   calls: int = typer.Option(100, "--calls", min=1, help="Live calls of the largest load step."),
                   duration: int = typer.Option(60, "--duration", min=6, help="Seconds of each load step."),
                   rules_fetch_wait_ms: int | None = typer.Option(
                       None, "--rules-fetch-wait-ms", min=1,
                       help="The rules worker's EMOWATCH_KAFKA__FETCH_WAIT_MAX_MS alone (default: --fetch-wait-ms; "
                            "1500 = Faust's own fixed wait)."),
                   fetch_wait_ms: int | None = typer.Option(
                       None, "--fetch-wait-ms", min=1,
                       help="Every consumer's EMOWATCH_KAFKA__FETCH_WAIT_MAX_MS (default: the production default, "
                            "100; 25 = lower latency per hop, more broker CPU).")) -> None:
    """Live calls through the whole local stack: gateway -> agent -> rules -> notifier -> webhook, and sink."""
    from emowatch.bench.pipeline import main

    main(calls=calls, seconds=duration, quick=quick, json_path=json_path, rules_fetch_wait_ms=rules_fetch_wait_ms,
         fetch_wait_ms=fetch_wait_ms)


@bench_app.command("rules")
def bench_rules(quick: bool = QUICK, json_path: Path | None = JSON,
                rules: int = typer.Option(10, "--rules", help="The rule set: 10 (thresholds, sequences; mono calls) "
                                                              "or 20 (those and 10 conditions of conversations; "
                                                              "stereo calls with voice activity).")) -> None:
    """Score messages/s through one rules worker vs a bare Faust table loop."""
    from emowatch.bench.rules import RULE_SETS, main

    if rules not in RULE_SETS:
        raise typer.BadParameter(f"choose one of {', '.join(map(str, RULE_SETS))}", param_hint="--rules")
    main(quick=quick, json_path=json_path, rules=rules)


@bench_app.command("notify")
def bench_notify(quick: bool = QUICK, json_path: Path | None = JSON) -> None:
    """Alerts through the notifier to a local webhook receiver: deliveries/s and p99 added latency."""
    from emowatch.bench.notify import main

    main(quick=quick, json_path=json_path)


@bench_app.command("gateway")
def bench_gateway(quick: bool = QUICK, json_path: Path | None = JSON) -> None:
    """Live WebSocket calls through one gateway: the most calls with p99 chunk publish delay <= 100 ms."""
    from emowatch.bench.gateway import main

    main(quick=quick, json_path=json_path)


@bench_app.command("replay")
def bench_replay(quick: bool = QUICK, json_path: Path | None = JSON) -> None:
    """Score messages/s through a replay from Kafka and a 10-value sweep, against the live rules worker."""
    from emowatch.bench.replay import main

    main(quick=quick, json_path=json_path)


@bench_app.command("history")
def bench_history(quick: bool = QUICK, json_path: Path | None = JSON) -> None:
    """Sink msgs/s into the embedded engine vs one insert per message; dashboard, query and timeline latency
    over a generated 1M-chunk history (100k with --quick)."""
    from emowatch.bench.history import main

    main(quick=quick, json_path=json_path)
