"""Secrets by name: the notifier's configuration says ``{secret: NAME}``, never a value.

A :class:`SecretStore` maps names to values. It is filled from a YAML or JSON file of
``name: value`` lines (the path comes from a setting) and/or a dict (tests). Lookups of a name
that is not there raise :class:`~emowatch.streams.notify.errors.SecretError` naming the secret;
no message, ``repr`` or error ever shows a value.
"""
from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

from emowatch.streams.notify.errors import SecretError

__all__ = ["SECRET_NAME", "SecretStore"]

SECRET_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class SecretStore(Mapping[str, str]):
    """An immutable ``name -> value`` map of secrets."""

    def __init__(self, values: Mapping[str, str] | None = None) -> None:
        data = dict(values or {})
        for name, value in data.items():
            if not isinstance(name, str) or not SECRET_NAME.match(name):
                raise SecretError(f"invalid secret name {name!r}: use letters, digits, '_', '.', '-'")
            if not isinstance(value, str):
                raise SecretError(f"secret {name!r} must be a string")
        self._values = data

    @classmethod
    def from_file(cls, path: str | Path) -> SecretStore:
        """Read a YAML or JSON mapping of secret names to string values."""
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise SecretError(f"cannot read secret file {path}: {exc.__class__.__name__}") from None
        except yaml.YAMLError:
            raise SecretError(f"secret file {path} is not valid YAML/JSON") from None
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise SecretError(f"secret file {path} must be a mapping of name: value")
        return cls({str(k): v if isinstance(v, str) else _scalar(k, v, path) for k, v in data.items()})

    def merged(self, other: Mapping[str, str]) -> SecretStore:
        """A store with ``other``'s entries added (they win on equal names)."""
        return SecretStore({**self._values, **dict(other)})

    def get_secret(self, name: str) -> str:
        """The value of ``name``; :class:`SecretError` naming it when missing."""
        try:
            return self._values[name]
        except KeyError:
            raise SecretError(f"secret {name!r} is not defined in the secret store") from None

    def __getitem__(self, name: str) -> str:
        return self.get_secret(name)

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"SecretStore(names={sorted(self._values)})"


def _scalar(name: object, value: object, path: str | Path) -> str:
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return str(value)
    raise SecretError(f"secret {name!r} in {path} must be a string")
