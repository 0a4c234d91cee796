"""Errors of the model quality loop."""

from __future__ import annotations

from emowatch.topics.errors import EmowatchError

__all__ = ["QualityError"]


class QualityError(EmowatchError, ValueError):
    """A labelled set, option or metric input that cannot be used; the message says which and why."""
