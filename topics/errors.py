"""The root error type of emowatch and the one error that means "dead-letter this message".

Every error class emowatch defines derives from :class:`EmowatchError` (a test walks the
production modules and checks it), so a caller can tell our errors from a library's bug
with one ``except``. Errors that keep a library base (``ValueError``, ``LookupError``, ...)
list it second, so existing ``except ValueError`` handlers keep working.

:class:`DeadLetterError` is the one way a pipeline step says "this message goes to the DLQ
at stage X because Y": the decode errors (:class:`~emowatch.topics.serde.SerdeError`,
``AudioError``), the evaluation error (``ScoresError``), a rejected rule set
(``RuleSetRejected``) and the stage failures the services build themselves (``INFER``,
``SINK``) are all ``DeadLetterError``\\ s, and every service hands them to the same writer
(``emowatch.streams.kafka.dead_letters.DeadLetters``), which keeps the original key, value
and headers (``topics/dlq.py`` builds the record).

This module lives in ``topics/`` (the contracts every component shares) and imports
nothing, so ``rules/`` and ``models/`` can use it without pulling in anything else.
"""
from __future__ import annotations

from typing import Any

__all__ = ["STAGES", "DeadLetterError", "EmowatchError", "normalize_stage"]

STAGES: tuple[str, ...] = ("RECEIVE", "DECODE", "INFER", "EVALUATE", "SEND", "SINK")
"""Pipeline stages, in flow order (the DeadLetter ``Stage`` enum symbols)."""


def normalize_stage(stage: str) -> str:
    """Upper-case and check a stage name (``"decode"`` -> ``"DECODE"``); ValueError otherwise."""
    if not isinstance(stage, str) or stage.strip().upper() not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; expected one of {', '.join(STAGES)} (any case)")
    return stage.strip().upper()


class EmowatchError(Exception):
    """Root of every error emowatch raises on purpose."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take different constructor arguments: rebuild from args + attributes so
        # every one of them pickles (errors cross process boundaries in tests and tools).
        return (_restore, (type(self), self.args, dict(self.__dict__)))


def _restore(cls: type, args: tuple[Any, ...], state: dict[str, Any]) -> BaseException:
    err = cls.__new__(cls)
    BaseException.__init__(err, *args)
    err.__dict__.update(state)
    return err


class DeadLetterError(EmowatchError):
    """A message that must go to the DLQ: ``stage`` (one of :data:`STAGES`) and ``reason``.

    ``reason`` is what the DeadLetter record says; ``cause`` (also set as ``__cause__``
    when raised ``from``) is the underlying error, whose class name becomes the record's
    ``error_type``.
    """

    def __init__(self, stage: str, reason: str, *, cause: BaseException | None = None) -> None:
        self.stage = normalize_stage(stage)
        self.reason = reason
        self.cause = cause
        super().__init__(f"{self.stage}: {reason}")

    @property
    def dead_letter_reason(self) -> str:
        """The DeadLetter record's ``reason`` (subclasses add their context, e.g. the source position)."""
        return self.reason
