"""The error of ``emowatch rescore``."""
from __future__ import annotations

from emowatch.topics.errors import EmowatchError


class RescoreError(EmowatchError, RuntimeError):
    """A rescore cannot start (bad target topic, model) or its output was not delivered."""
