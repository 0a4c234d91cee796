"""Errors of the notifier's pure core: configuration, secrets, matchers, templates, input records."""
from __future__ import annotations

from dataclasses import dataclass, field

from emowatch.topics.errors import EmowatchError

__all__ = ["DispatcherStateError", "InvalidAlertError", "MatcherError", "NotifyConfigError", "SecretError",
           "TemplateRenderError"]


@dataclass(eq=True)
class NotifyConfigError(EmowatchError):
    """One problem in a notifier configuration file (the same shape as ``RuleFileError``).

    ``str(err)`` is ``file:line: reason``; ``line`` is 0 when the position is unknown. When raised
    by :func:`~emowatch.streams.notify.config_loader.parse_config`, ``errors`` lists every problem
    found in the file (this one first).
    """

    file: str
    line: int
    column: int
    reason: str
    errors: list[NotifyConfigError] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"

    def __hash__(self) -> int:
        return hash((self.file, self.line, self.column, self.reason))


class SecretError(EmowatchError, KeyError):
    """A secret that is not in the secret store, or a secret file that cannot be read.

    The message names the secret, never a value."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "secret error"


class MatcherError(EmowatchError, ValueError):
    """A label matcher that does not parse (``name="value"``, ``!=``, ``=~``, ``!~``) or a bad regex."""


class TemplateRenderError(EmowatchError, ValueError):
    """A notification template that does not compile or render (syntax, undefined variable, sandbox)."""


class InvalidAlertError(EmowatchError, ValueError):
    """An alert record the dispatcher cannot use (no ``alert_id``, status not FIRING/RESOLVED)."""


class DispatcherStateError(EmowatchError, ValueError):
    """A dispatcher snapshot that :meth:`Dispatcher.restore` cannot read (unknown version)."""
