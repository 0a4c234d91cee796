"""docker-compose.yml (and its GPU override) checked without a Docker engine: every emowatch service runs an
existing CLI command with valid options, every EMOWATCH_* variable is a known setting with a valid value,
every long-running service has a health check on the port it serves, the infrastructure services are the
expected ones, Prometheus scrapes every worker on its port; plus `docker compose config -q` where the
compose plugin exists."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import typer.main
import yaml

from emowatch.streams.cli.main import app
from emowatch.streams.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
GPU_OVERRIDE = ROOT / "docker-compose.gpu.yml"
PROMETHEUS = ROOT / "infra" / "prometheus" / "prometheus.yml"
INFRA = {"kafka", "schema-registry", "clickhouse", "grafana", "prometheus"}
WORKERS = {"infer", "rules-default", "rules-vip", "sink", "notify", "gateway"}  # long-running emowatch services
ONE_SHOT = {"topics-init"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def emowatch_services(services: dict) -> dict:
    return {n: s for n, s in services.items() if s.get("image", "").startswith("emowatch:")}


def interpolate(value) -> str:
    """Compose's ``${VAR:-default}`` / ``${VAR-default}`` / ``${VAR}`` as in an environment without VAR."""
    return re.sub(r"\$\{[A-Za-z_][A-Za-z0-9_]*(?::?-([^}]*))?\}", lambda m: m.group(1) or "", str(value))


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: interpolate(v) for k, v in env.items()}


def resolve(argv: list[str]):
    """The CLI command ``argv`` (without the program name) runs, its options parsed as at start-up (typer's
    own click objects, duck-typed: typer >= 0.24 vendors click)."""
    cmd = typer.main.get_command(app)
    args = list(argv)
    path = ["emowatch"]
    while hasattr(cmd, "list_commands"):  # a group
        assert args, f"{' '.join(path)} needs a subcommand"
        name = args.pop(0)
        assert name in cmd.list_commands(cmd.context_class(cmd, info_name=path[-1])), \
            f"`{' '.join(path)} {name}` is not a command"
        cmd, path = cmd.get_command(cmd.context_class(cmd, info_name=path[-1]), name), [*path, name]
    cmd.make_context(" ".join(path), args)  # raises a UsageError on an unknown option or a bad value
    return cmd


def http_port(command: list[str]) -> int | None:
    return int(command[command.index("--http-port") + 1]) if "--http-port" in command else None


def test_the_services_are_the_infrastructure_and_the_emowatch_services(services):
    assert set(services) == INFRA | WORKERS | ONE_SHOT
    assert set(emowatch_services(services)) == WORKERS | ONE_SHOT
    assert all("build" in s for s in emowatch_services(services).values())


@pytest.mark.parametrize("name", sorted(WORKERS | ONE_SHOT))
def test_each_emowatch_service_runs_an_existing_cli_command(services, name):
    command = services[name]["command"]
    assert command[0] == "emowatch"
    resolve(command[1:])


def test_the_cli_resolver_refuses_what_the_cli_refuses():
    with pytest.raises(AssertionError, match="not a command"):
        resolve(["worker", "inference"])
    with pytest.raises(Exception, match="No such option") as err:
        resolve(["worker", "sink", "--no-such-option"])
    assert type(err.value).__name__ == "NoSuchOption"


@pytest.mark.parametrize("name", sorted(WORKERS | ONE_SHOT))
def test_every_emowatch_variable_is_a_known_setting_with_a_valid_value(services, name):
    env = environment(services[name])
    assert {k for k in env if not k.startswith("EMOWATCH_")} == set()
    load_settings(env)  # SettingsError names an unknown variable or a bad value


def test_the_shared_anchors_are_valid_settings(compose):
    for anchor in ("x-emowatch-env", "x-rules-env"):
        load_settings({k: interpolate(v) for k, v in compose[anchor].items()})


def test_workers_that_others_reach_listen_on_every_interface(services):
    """The gateway reads the sink's history API, rules workers forward /calls/<id> to each other, and
    Prometheus scrapes every worker's /metrics from its own container."""
    for name, section in [("gateway", "GATEWAY"), ("sink", "SINK"), ("notify", "NOTIFY"), ("rules-default", "RULES"),
                          ("rules-vip", "RULES")]:
        assert environment(services[name])[f"EMOWATCH_{section}__HTTP_BIND"] == "0.0.0.0", name


def test_every_long_running_service_has_a_health_check_on_its_own_port(services):
    for name, service in services.items():
        if name in ONE_SHOT:
            assert service.get("restart") == "no" and "healthcheck" not in service
            continue
        check = service.get("healthcheck")
        assert check and check.get("test"), f"{name} has no healthcheck"
        if name in WORKERS:
            port = http_port(service["command"])
            assert f"http://127.0.0.1:{port}/health" in check["test"], name


def test_services_wait_for_what_they_need(services):
    assert services["schema-registry"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["topics-init"]["depends_on"]["kafka"]["condition"] == "service_healthy"
    assert services["sink"]["depends_on"]["clickhouse"]["condition"] == "service_healthy"
    for name in WORKERS:
        assert services[name]["depends_on"]["topics-init"]["condition"] == "service_completed_successfully"


def test_mounted_files_exist(services):
    for name, service in services.items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_files_the_services_name_inside_the_image_exist_in_the_repository(services):
    """infra/Dockerfile copies the repository's folders to /app: /app/<path> in a command or a variable must be
    a file here (the notifier's compose configuration, the VIP rules)."""
    for name, service in emowatch_services(services).items():
        for value in [*service["command"], *environment(service).values()]:
            if str(value).startswith("/app/"):
                assert (ROOT / value.removeprefix("/app/")).is_file(), f"{name}: {value}"


def test_the_gpu_is_an_optional_override_of_the_inference_agent(services):
    assert "deploy" not in services["infer"], "the base file must start on hosts without a GPU"
    override = yaml.safe_load(GPU_OVERRIDE.read_text())
    assert set(override["services"]) == {"infer"}
    devices = override["services"]["infer"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def test_prometheus_scrapes_every_worker_on_its_port(services):
    config = yaml.safe_load(PROMETHEUS.read_text())
    jobs = {j["job_name"]: j["dns_sd_configs"][0] for j in config["scrape_configs"]}
    assert set(jobs) == WORKERS
    for name, sd in jobs.items():
        assert sd["names"] == [name] and sd["type"] == "A"
        assert sd["port"] == http_port(services[name]["command"]), name
    assert config["rule_files"] == ["alerts.yml"]


def _compose_plugin() -> str | None:
    docker = shutil.which("docker")
    if docker is None:
        return "no docker client on PATH"
    probe = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=60)
    return None if probe.returncode == 0 else "docker has no compose plugin (`docker compose version`: " \
        + ((probe.stderr or probe.stdout).strip().splitlines() or ["no output"])[0][:80] + ")"


@pytest.mark.parametrize("files", [["docker-compose.yml"], ["docker-compose.yml", "docker-compose.gpu.yml"]],
                         ids=["base", "gpu"])
def test_docker_compose_config_accepts_the_files(files):
    missing = _compose_plugin()
    if missing:
        pytest.skip(f"`docker compose config -q` not run: {missing}; the structural tests above stand in")
    args = [a for f in files for a in ("-f", str(ROOT / f))]
    res = subprocess.run([shutil.which("docker"), "compose", *args, "config", "-q"], capture_output=True,
                         text=True, timeout=120, cwd=ROOT)
    assert res.returncode == 0, res.stderr
