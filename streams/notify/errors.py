"""Errors of the notifier's pure core: configuration, secrets, matchers, templates, input records."""
from __future__ import annotations

from emowatch.rules.yamlsource import SourceFileError
from emowatch.topics.errors import EmowatchError

__all__ = ["DispatcherStateError", "InvalidAlertError", "MatcherError", "NotifyConfigError", "SecretError",
           "TemplateRenderError"]


class NotifyConfigError(SourceFileError):
    """One problem in a notifier configuration file: ``file:line: reason`` (fields in
    :class:`~emowatch.rules.yamlsource.SourceFileError`, shared with ``RuleFileError``)."""


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
