"""One frozen settings model per process, read from EMOWATCH_* environment variables.

Nested settings use ``__``: ``EMOWATCH_KAFKA__BOOTSTRAP_SERVERS=broker:9092``.
Unknown ``EMOWATCH_*`` variables and invalid values fail fast at start-up with
the variable's name (a typo must never silently fall back to a default).
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from emowatch.streams.faults import parse as parse_fault_points
from emowatch.topics.errors import EmowatchError
from emowatch.topics.security import SASL_MECHANISMS, SECURITY_PROTOCOLS, kafka_security_config

ENV_PREFIX = "EMOWATCH_"
NESTED = "__"


def _http_url(value: str | None, what: str) -> str | None:
    """``value`` unchanged when unset or an http(s):// URL; else a ValueError ending with ``what``."""
    if value is not None and not value.startswith(("http://", "https://")):
        raise ValueError(f"must be an http(s):// URL {what}")
    return value


class _Section(BaseModel):
    # hide_input_in_errors: a validation error must never echo a password it was given
    model_config = ConfigDict(extra="forbid", frozen=True, hide_input_in_errors=True)


class KafkaSettings(_Section):
    bootstrap_servers: str = "localhost:9092"
    client_id: str = "emowatch"
    security_protocol: Literal[SECURITY_PROTOCOLS] = "PLAINTEXT"  # type: ignore[valid-type]
    sasl_mechanism: Literal[SASL_MECHANISMS] | None = None  # type: ignore[valid-type]
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: Path | None = None
    ssl_certfile: Path | None = None
    ssl_keyfile: Path | None = None
    ssl_key_password: SecretStr | None = None
    topic_prefix: str = ""
    partitions: int = Field(12, ge=1, le=10_000)
    replication_factor: int = Field(1, ge=1, le=16)
    session_timeout_ms: int = Field(10_000, ge=1_000, le=300_000)
    # Upper bound on how long the broker may hold a fetch. tansu (local) answers only when it expires,
    # so it bounds per-hop latency there; Apache Kafka answers as soon as data is available.
    # Every consumer uses it, the rules worker's Faust consumer too (instead of Faust's fixed 1500 ms).
    fetch_wait_max_ms: int = Field(100, ge=1, le=10_000)
    schema_registry_url: str | None = None
    schema_registry_user_info: SecretStr | None = None  # "user:password" (basic.auth.user.info)

    @model_validator(mode="after")
    def _consistent_security(self) -> KafkaSettings:
        self.security()  # raises (a ValueError) for e.g. SASL credentials with PLAINTEXT: fail at start-up
        return self

    def security(self) -> dict[str, str]:
        """librdkafka security and identity keys (secrets included: never log the result).

        Delegates to :func:`emowatch.topics.security.kafka_security_config` (one mapping for
        every client). ``security_protocol`` is always explicit here (default PLAINTEXT), so
        SASL credentials or TLS files need a matching protocol; inconsistent settings raise
        ``SecurityConfigError`` (a ValueError) instead of connecting without them. Log
        ``emowatch.topics.security.redact(...)`` of the result, never the result itself.
        """
        return kafka_security_config({
            "security_protocol": self.security_protocol, "sasl_mechanism": self.sasl_mechanism,
            "sasl_username": self.sasl_username, "sasl_password": self.sasl_password,
            "tls_ca_file": self.ssl_cafile, "tls_cert_file": self.ssl_certfile, "tls_key_file": self.ssl_keyfile,
            "tls_key_password": self.ssl_key_password, "client_id": self.client_id,
        })


class ModelSettings(_Section):
    model: str = "iic/emotion2vec_plus_large"
    device: str = "auto"
    precision: Literal["auto", "fp32", "bf16", "fp16"] = "auto"
    embeddings: bool = False
    # torch's intra-op CPU threads in the agent and the gateway's analyze route (0: torch's default, one per core);
    # 1 when the process shares its cores with other services (docs/benchmarks.md "Agent threads")
    threads: int = Field(0, ge=0, le=1024)


class InferSettings(_Section):
    group_id: str = "emowatch-infer"
    context_s: float = Field(2.0, ge=0.0, le=30.0)
    max_chunk_s: float = Field(5.0, gt=0.0, le=60.0)
    max_batch: int = Field(64, ge=1, le=4096)
    max_wait_ms: int = Field(20, ge=0, le=10_000)
    queue_size: int = Field(512, ge=1)
    idle_evict_s: float = Field(300.0, gt=0)
    reorder_max: int = Field(4, ge=0, le=64)  # early chunks held per call+role while a missing seq may still come
    reorder_timeout_s: float = Field(1.0, ge=0.0, le=30.0)  # then the gap is declared (gap_before=True)
    # A live call's inputs that hold its left context (context_s) stay uncommitted, so that an agent restarted
    # after a crash reads them again and scores the next chunk as an uninterrupted agent would; released at the
    # end of the call or after this long without a chunk of it. 0: commit at once (a restart loses the context).
    # The broker's lag of the agent's group counts them (a few inputs per live call); emowatch_infer_consumer_lag
    # does not.
    context_hold_s: float = Field(10.0, ge=0.0, le=3600.0)
    stereo_roles: str = "CUSTOMER,AGENT"  # roles of the left,right channels of stereo audio
    http_port: int = Field(0, ge=0, le=65535)
    http_bind: str = "127.0.0.1"  # interface of /health and /metrics (0.0.0.0 in a container, for Prometheus)
    # /health fails when outputs have waited this long without any delivery report (the broker refuses or loses
    # them, e.g. a producer id a restarted broker no longer knows): the agent commits only delivered outputs, so
    # it would otherwise stand still while reporting ok. The producer itself retries for message.timeout.ms.
    delivery_stall_s: float = Field(60.0, gt=0, le=3600)
    # Voice activity per 20 ms frame in FrameScores `speech`/`vad` (streams/infer/vad.py): silero (silero-vad's
    # model, a probability), webrtc (webrtcvad, 0 or 1), off (null). `energy_db` is computed in every case.
    vad: Literal["silero", "webrtc", "off"] = "silero"
    vad_context_ms: int = Field(256, ge=0, le=30_000)  # warm-up audio before the chunk (at most context_s)
    vad_webrtc_mode: int = Field(2, ge=0, le=3)  # webrtcvad aggressiveness (3: most audio called non-speech)


class RulesSettings(_Section):
    business_line: str = "*"
    rules_file: Path | None = None
    app_prefix: str = "emowatch-rules"
    http_port: int = Field(0, ge=0, le=65535)
    # Interface the worker's web server (/health, /metrics, /calls) listens on, and the URL other
    # workers of the group use to forward /calls/<id> to the worker that owns the call.
    http_bind: str = "127.0.0.1"
    advertised_url: str | None = None  # default: http://<http_bind or hostname>:<port>
    # Static group membership (Kafka group.instance.id, KIP-345): a worker restarted with the same id
    # takes its partitions back without a rebalance of the others, e.g. the pod name of a StatefulSet.
    instance_id: str | None = None
    # Score messages are evaluated in batches of at most batch_max, waiting at most batch_wait_ms
    # for a batch to fill: alerts are acknowledged once per batch and each call's state is written
    # once per batch (fewer changelog records, fewer produce requests).
    batch_max: int = Field(1000, ge=1, le=100_000)
    batch_wait_ms: int = Field(20, ge=1, le=10_000)
    # At start-up, how long the worker waits for the rules topic to exist and to be read before it serves the
    # rules file alone (scores are held back meanwhile; a set published later still replaces the file's).
    rules_wait_s: float = Field(30.0, gt=0, le=3600)

    @field_validator("advertised_url")
    @classmethod
    def _advertised(cls, v: str | None) -> str | None:
        return _http_url(v, "other workers can reach, e.g. http://rules-0.rules:6066")


class SinkSettings(_Section):
    clickhouse_url: str | None = None
    # A cluster of the ClickHouse servers' remote_servers: the schema is created ON CLUSTER with Replicated
    # tables and Distributed ones for reads and inserts (README "History on a ClickHouse cluster"); unset = one
    # server. replica_path: the Keeper path of each replicated table (the servers' {shard} and {replica} macros).
    cluster: str | None = None
    replica_path: str = "/clickhouse/tables/{shard}/{database}/{table}"
    data_dir: Path = Path(".emowatch")
    database: str = "emowatch"
    group_id: str = "emowatch-sink"
    batch_rows: int = Field(5_000, ge=1)
    batch_ms: int = Field(1_000, ge=1)
    http_port: int = Field(0, ge=0, le=65535)
    # Interface of the sink's web server: /health, /metrics and the history read API (/v1/history/...)
    # that the gateway's console reads (the process that holds the embedded ClickHouse serves its reads).
    http_bind: str = "127.0.0.1"

    @field_validator("clickhouse_url")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        return _http_url(v, "of a ClickHouse server (unset it for the embedded engine)")

    @field_validator("cluster")
    @classmethod
    def _cluster(cls, v: str | None, info: ValidationInfo) -> str | None:
        if v is None:
            return v
        if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", v):
            raise ValueError("must be the name of a cluster of the servers' remote_servers (letters, digits, _ . -)")
        if not info.data.get("clickhouse_url"):
            raise ValueError("needs EMOWATCH_SINK__CLICKHOUSE_URL (a server of the cluster): the embedded engine "
                             "is one server")
        return v

    @field_validator("database")
    @classmethod
    def _database(cls, v: str, info: ValidationInfo) -> str:
        if info.data.get("cluster") and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
            raise ValueError("must be a plain name ([A-Za-z_][A-Za-z0-9_]*) with EMOWATCH_SINK__CLUSTER")
        return v

    @field_validator("replica_path")
    @classmethod
    def _replica_path(cls, v: str) -> str:
        if not re.fullmatch(r"/[A-Za-z0-9_./{}-]+", v) or "{shard}" not in v or not ("{table}" in v or "{uuid}" in v):
            raise ValueError("must be a Keeper path starting with / that holds {shard} and {table} (or {uuid}), "
                             "e.g. /clickhouse/tables/{shard}/{database}/{table}")
        return v


class NotifySettings(_Section):
    # The notifier configuration (docs/notify.md); unset = the bundled example (resources.notify_config()).
    config_file: Path | None = None
    # YAML/JSON file of secret name: value lines the configuration's {secret: NAME} references resolve from.
    secrets_file: Path | None = None
    group_id: str = "emowatch-notify"
    http_port: int = Field(0, ge=0, le=65535)
    http_bind: str = "127.0.0.1"
    # Seconds between checks of the config and secrets files for a change (hot reload; SIGHUP reloads at once).
    reload_check_s: float = Field(2.0, gt=0, le=3600)

    def config_path(self) -> Path:
        """``config_file``, or the bundled ``infra/notify/notify.yaml``."""
        from emowatch.streams.resources import notify_config

        return self.config_file or notify_config()


class GatewaySettings(_Section):
    http_port: int = Field(8080, ge=0, le=65535)  # the seed's listener port; 0 = a free port
    http_bind: str = "127.0.0.1"
    # Bearer token required on /v1/* when set (the console asks for it once and keeps it in the browser).
    auth_token: SecretStr | None = None
    # Limits of one upload: body size and call duration; larger requests get 413 and publish nothing.
    max_upload_mb: int = Field(1024, ge=1, le=1_000_000)
    max_call_s: float = Field(4 * 3600.0, gt=0, le=7 * 24 * 3600.0)
    chunk_ms: int = Field(1000, ge=100, le=10_000)  # AudioChunk length (the inference agent expects 1 s)
    stereo_roles: str = "CUSTOMER,AGENT"  # roles of the left,right channels of stereo audio
    # The history read API (the sink's web server, /v1/history/...); unset: the console has no history pages.
    history_url: str | None = None
    # URL the console is reached at, for the links the gateway returns (default: http://<bind>:<port>).
    public_url: str | None = None
    # Score whole uploads with the model in the gateway (the upload page's utterance result is then
    # FunASR's own answer for the file); off: the page shows the streamed result only.
    analyze: bool = True
    # A live call without score messages for this long leaves the live board (ended calls leave at once).
    live_idle_s: float = Field(120.0, gt=0, le=86_400)

    @field_validator("history_url", "public_url")
    @classmethod
    def _urls(cls, v: str | None) -> str | None:
        return _http_url(v, "(e.g. http://sink:8081)")

    @field_validator("auth_token", mode="before")
    @classmethod
    def _no_empty_token(cls, v):
        return None if v == "" else v  # an empty variable (compose's ${VAR:-}) means no token, not an empty one


class Settings(_Section):
    kafka: KafkaSettings = KafkaSettings()
    model: ModelSettings = ModelSettings()
    infer: InferSettings = InferSettings()
    rules: RulesSettings = RulesSettings()
    sink: SinkSettings = SinkSettings()
    notify: NotifySettings = NotifySettings()
    gateway: GatewaySettings = GatewaySettings()
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    # Test and chaos tool, off by default: "point=action,..." (streams/faults.py, docs/ARCHITECTURE.md
    # "Fault points"), e.g. "sink.after_insert=kill@3" kills the worker at the 3rd insert before its commit.
    fault_points: str = ""

    @field_validator("fault_points")
    @classmethod
    def _fault_points(cls, v: str) -> str:
        parse_fault_points(v)  # a FaultSpecError (a ValueError) names the bad part
        return v

    def with_overrides(self, **sections: dict) -> Settings:
        """A copy with some section fields replaced (validated again)."""
        data = self.model_dump()
        for section, values in sections.items():
            data[section] = {**data[section], **values}
        return Settings.model_validate(data)


class SettingsError(EmowatchError):
    """Invalid configuration; the message names the variable. Entry points turn it into exit code 2
    (``emowatch.streams.cli.common.settings_or_exit``)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


def _env_to_tree(env: dict[str, str]) -> dict:
    """Map EMOWATCH_A__B=v to {"a": {"b": v}}; unknown names raise SettingsError."""
    tree: dict = {}
    unknown = []
    for key, value in env.items():
        upper = key.upper()
        if not upper.startswith(ENV_PREFIX):
            continue
        path = upper[len(ENV_PREFIX):].lower().split(NESTED)
        model: type[BaseModel] = Settings
        ok = True
        for i, part in enumerate(path):
            field = model.model_fields.get(part)
            if field is None:
                ok = False
                break
            ann = field.annotation
            is_section = isinstance(ann, type) and issubclass(ann, BaseModel)
            if i < len(path) - 1:
                if not is_section:
                    ok = False
                    break
                model = ann
            elif is_section:
                ok = False
        if not ok:
            unknown.append(key)
            continue
        node = tree
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    if unknown:
        raise SettingsError(f"unknown setting(s) {', '.join(sorted(unknown))} (see docs/configuration.md)")
    return tree


def load_settings(env: dict[str, str] | None = None) -> Settings:
    """Validate the environment (default ``os.environ``) and return frozen settings.

    Environment variables are read explicitly: unknown ``EMOWATCH_*`` names and
    invalid values raise :class:`SettingsError` naming the variable, so a
    service fails at start-up rather than running on a silent default.
    """
    tree = _env_to_tree(dict(os.environ if env is None else env))
    try:
        return Settings.model_validate(tree)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            var = ENV_PREFIX + NESTED.join(str(p) for p in err["loc"]).upper()
            problems.append(f"{var}: {err['msg']}")
        raise SettingsError("invalid configuration: " + "; ".join(problems)) from None


def redacted(settings: Settings) -> dict:
    """Settings as a dict safe to log: SecretStr fields stay masked, and so do passwords
    embedded in URLs (``https://user:pw@host``)."""
    from emowatch.topics.security import redact

    return redact(settings.model_dump(mode="json"))


def settings_reference() -> list[tuple[str, str, str]]:
    """(variable, default, type) for every setting: the source of docs/configuration.md."""
    rows = []
    for name, field in Settings.model_fields.items():
        ann = field.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            for sub, f in ann.model_fields.items():
                default = f.default
                if default is None:
                    shown = "unset"
                else:
                    shown = default.get_secret_value() if isinstance(default, SecretStr) else str(default)
                rows.append((f"{ENV_PREFIX}{name}{NESTED}{sub}".upper(), shown, _type_name(f.annotation)))
        else:
            rows.append((f"{ENV_PREFIX}{name}".upper(), str(field.default), _type_name(ann)))
    return rows


def _type_name(ann) -> str:
    text = str(ann)
    for noise in ("typing.", "pathlib.", "pydantic.types.", "<class '", "'>"):
        text = text.replace(noise, "")
    return text
