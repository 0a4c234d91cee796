"""Load a notifier configuration: YAML with positions -> ``${VAR}`` substitution -> strict models ->
cross checks (references, allow-list, secrets, templates). Every problem is reported as
``file:line: reason``; :class:`NotifyConfigError` carries all of them.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from emowatch.rules.yamlsource import (
    SourceDoc,
    data_path,
    dotted,
    parse_document,
    sorted_errors,
    validation_errors,
)
from emowatch.streams.notify.config import NotifyConfig, Route, host_allowed
from emowatch.streams.notify.errors import NotifyConfigError, SecretError
from emowatch.streams.notify.routing import resolve_timings
from emowatch.streams.notify.secret_store import SecretStore
from emowatch.streams.notify.templates import check_template

__all__ = ["check_config", "load_config", "parse_config"]

Loc = tuple[Any, ...]
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def parse_config(text: str, source_name: str = "<string>", *, secrets: SecretStore | Mapping[str, str] | None = None,
                 variables: Mapping[str, str] | None = None) -> NotifyConfig:
    """Parse and validate a configuration; secret references are resolved from ``secrets`` (missing
    ones are errors). ``${NAME}`` / ``${NAME:-default}`` in string values come from ``variables``
    (nothing is read from the environment unless the caller passes it). Raises
    :class:`NotifyConfigError` with every problem in ``.errors``."""
    store = secrets if isinstance(secrets, SecretStore) else SecretStore(secrets)
    config, errors = _parse(text, source_name, store, dict(variables or {}))
    if errors:
        first = errors[0]
        raise NotifyConfigError(first.file, first.line, first.column, first.reason, errors=list(errors))
    assert config is not None
    return config


def load_config(path: str | Path, *, secrets: SecretStore | Mapping[str, str] | None = None,
                variables: Mapping[str, str] | None = None) -> NotifyConfig:
    """Read and parse a configuration file (see :func:`parse_config`)."""
    return parse_config(_read(path), str(path), secrets=secrets, variables=variables)


def check_config(path: str | Path, *, secrets: SecretStore | Mapping[str, str] | None = None,
                 variables: Mapping[str, str] | None = None) -> list[str]:
    """Problems of a configuration file as ``file:line: reason`` lines (empty: valid).

    For ``emowatch notify check``: without ``secrets``, secret references are not resolved
    (their names are still checked for syntax)."""
    try:
        text = _read(path)
    except NotifyConfigError as exc:
        return [str(exc)]
    store = None if secrets is None else (secrets if isinstance(secrets, SecretStore) else SecretStore(secrets))
    _config, errors = _parse(text, str(path), store, dict(variables or {}))
    return [str(e) for e in errors]


def _read(path: str | Path) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        err = NotifyConfigError(str(path), 0, 0, f"cannot read notifier config: {exc}")
        raise NotifyConfigError(str(path), 0, 0, err.reason, errors=[err]) from exc


def _parse(text: str, name: str, store: SecretStore | None,
           variables: dict[str, str]) -> tuple[NotifyConfig | None, list[NotifyConfigError]]:
    doc, errors = parse_document(text, name, NotifyConfigError,
                                 "a notifier config must be a YAML mapping with 'route' and 'receivers'")
    if doc is None:
        return None, errors
    errors += [_at(doc, name, loc, reason) for loc, reason in _interpolate(doc.data, (), variables)]
    if errors:
        return None, sorted_errors(errors)
    try:
        config = NotifyConfig.model_validate(doc.data)
    except ValidationError as exc:
        errors += validation_errors(exc, doc, name, NotifyConfigError)
        return None, sorted_errors(errors)
    errors += [_at(doc, name, loc, reason) for loc, reason in _cross_check(config, doc.data, store)]
    if errors:
        return None, sorted_errors(errors)
    return config, []


def _interpolate(node: Any, loc: Loc, variables: dict[str, str]) -> Iterator[tuple[Loc, str]]:
    """Replace ``${NAME}`` / ``${NAME:-default}`` in string values, in place."""
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in list(items):
        if isinstance(value, (dict, list)):
            yield from _interpolate(value, loc + (key,), variables)
        elif isinstance(value, str) and "${" in value:
            missing = [m.group(1) for m in _VAR.finditer(value) if m.group(1) not in variables and m.group(2) is None]
            if missing:
                name = missing[0]
                yield loc + (key,), f"variable {name!r} is not set (write ${{{name}:-default}} for a default)"
                continue
            node[key] = _VAR.sub(lambda m: variables.get(m.group(1), m.group(2) or ""), value)


def _cross_check(config: NotifyConfig, data: dict[str, Any], store: SecretStore | None) -> Iterator[tuple[Loc, str]]:
    receivers = {}
    for i, receiver in enumerate(config.receivers):
        if receiver.name in receivers:
            yield ("receivers", i, "name"), f"duplicate receiver name {receiver.name!r}"
        receivers.setdefault(receiver.name, i)
    intervals: set[str] = set()
    for i, interval in enumerate(config.time_intervals):
        if interval.name in intervals:
            yield ("time_intervals", i, "name"), f"duplicate time interval name {interval.name!r}"
        intervals.add(interval.name)
    root = config.route
    if root.receiver is None:
        yield ("route",), "the root route needs a 'receiver' (the default for alerts no route matches)"
    for key, value in (("matchers", root.matchers), ("continue", root.continue_),
                       ("mute_time_intervals", root.mute_time_intervals),
                       ("active_time_intervals", root.active_time_intervals)):
        if value:
            yield ("route", key), "the root route matches every alert: it cannot have this key"
    yield from _check_routes(root, ("route",), None, receivers, intervals)
    for i, receiver in enumerate(config.receivers):
        yield from _check_receiver(config, i, receiver, data, store)
    if config.inhibit_rules:
        yield ("inhibit_rules",), ("not supported by the notifier: inhibition is done upstream by the rules "
                                   "engine ('inhibit:' in the rule files, docs/rules.md)")


def _check_routes(route: Route, loc: Loc, parent: Any, receivers: dict[str, int],
                  intervals: set[str]) -> Iterator[tuple[Loc, str]]:
    if route.receiver is not None and route.receiver not in receivers:
        yield loc + ("receiver",), f"unknown receiver {route.receiver!r} (defined: {', '.join(receivers)})"
    for key in ("mute_time_intervals", "active_time_intervals"):
        for j, name in enumerate(getattr(route, key)):
            if name not in intervals:
                known = ", ".join(sorted(intervals)) or "none"
                yield loc + (key, j), f"undefined time interval {name!r} (defined: {known})"
    timings = resolve_timings(route, parent)
    if timings.repeat_interval < timings.group_interval:
        yield loc, (f"repeat_interval ({timings.repeat_interval} ms) is shorter than group_interval "
                    f"({timings.group_interval} ms): reminders are sent on group_interval ticks")
    for j, child in enumerate(route.routes):
        yield from _check_routes(child, loc + ("routes", j), timings, receivers, intervals)


def _check_receiver(config: NotifyConfig, i: int, receiver: Any, data: dict[str, Any],
                    store: SecretStore | None) -> Iterator[tuple[Loc, str]]:
    allowed = config.global_.webhook_allowed_hosts
    for kind, j, integration in receiver.integrations():
        raw = data["receivers"][i].get(kind)
        base: Loc = ("receivers", i, kind) + ((j,) if isinstance(raw, list) else ())
        if store is not None:
            for sub, ref in integration.secret_refs():
                try:
                    ref.resolve(store)
                except SecretError as exc:
                    yield base + sub + ("secret",), str(exc)
        target = integration.url_to_check()
        if target is not None and not host_allowed(target[1], allowed):
            field, url = target
            host = url.split("://", 1)[-1].split("/", 1)[0].split("@")[-1]
            shown = url if kind in ("webhook", "alertmanager") else f"host {host}"
            yield base + ((field,) if field else ()), (
                f"{shown} is not on global.webhook_allowed_hosts "
                f"({', '.join(allowed) or 'empty'}); add the host or a *.domain pattern")
    if receiver.templates is not None:
        language = receiver.language or config.global_.language
        for part in ("title", "body"):
            source = getattr(receiver.templates, part)
            problem = None if source is None else check_template(source, language)
            if problem:
                yield ("receivers", i, "templates", part), problem


def _at(doc: SourceDoc, name: str, loc: Loc, reason: str) -> NotifyConfigError:
    """An error at ``loc``, its reason prefixed with the dotted path of the nearest key in the file."""
    line, col = doc.position(loc)
    path = dotted(data_path(loc, doc))
    return NotifyConfigError(name, line, col, f"{path}: {reason}" if path else reason)










def environment_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """``${NAME}`` values a running notifier offers its configuration: the ``NOTIFY_*`` entries of
    ``environ`` (the process environment) only, so a config cannot read other secrets."""
    return {k: v for k, v in environ.items() if k.startswith("NOTIFY_")}
