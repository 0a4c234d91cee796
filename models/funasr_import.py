"""Import FunASR without the parts an emotion2vec process never uses.

``import funasr`` (1.4.x) walks and imports every module of the package, about 400, so that
each model class registers itself in ``funasr.register.tables``. That pulls in scikit-learn,
SciPy's statistics, SymPy and the code of 50 other models: 10-17 s of CPU per process on a
2-core machine, paid by every inference agent, gateway and trainer at start-up
(docs/benchmarks.md, "make test").

:func:`import_funasr` imports the package with a finder that refuses, for the length of that
import only, the modules emotion2vec does not need: the other models (``funasr.models.*``
except ``emotion2vec``), the command-line entry points (``funasr.bin``) and the evaluation
metrics (``funasr.metrics``, where scikit-learn comes from) and the training loops
(``funasr.train_utils.trainer``, ``trainer_ds``: torch.distributed.fsdp and SymPy). FunASR's walk records such an
import error and goes on, as it does for any optional part that cannot be imported; the
refused modules are not left in ``sys.modules``, so a later explicit import of one of them
works as usual. ``AutoModel``, its download, config and checkpoint loading, and the
Emotion2vec model class are FunASR's own code, untouched.

If the result lacks ``Emotion2vec`` in FunASR's model table (a FunASR version that arranges
its modules differently), the package is imported again in full, with a warning, so the
shortcut can only cost time, never correctness. ``EMOWATCH_FUNASR_FULL_IMPORT=1`` turns it
off, and it is off when FunASR's own strict mode (``FUNASR_STRICT_IMPORT=1``) is set, since
there an import error stops the walk.
"""

from __future__ import annotations

import importlib.abc
import logging
import os
import sys
from types import ModuleType

log = logging.getLogger(__name__)

__all__ = ["import_funasr", "REFUSED", "REFUSED_MODULES", "KEPT_MODELS", "FULL_IMPORT_ENV"]

FULL_IMPORT_ENV = "EMOWATCH_FUNASR_FULL_IMPORT"
KEPT_MODELS = frozenset({"emotion2vec"})
REFUSED = frozenset({"bin", "metrics"})  # funasr.<name> subpackages refused besides other models
# single modules refused: the training loops, which import torch.distributed.fsdp and through it SymPy
# (1.6 s of the lean import's 3.1 s); nothing else in FunASR imports them
REFUSED_MODULES = frozenset({"funasr.train_utils.trainer", "funasr.train_utils.trainer_ds"})
_MARK = "not imported by emowatch (models/funasr_import.py)"


class _Refuse(importlib.abc.MetaPathFinder):
    """Raises ImportError for the modules of FunASR an emotion2vec process does not use."""

    def __init__(self) -> None:
        self.refused: list[str] = []

    def find_spec(self, name: str, path=None, target=None):  # noqa: ANN001 (importlib's signature)
        parts = name.split(".")
        if parts[0] != "funasr" or len(parts) < 2:
            return None
        other_model = parts[1] == "models" and len(parts) >= 3 and parts[2] not in KEPT_MODELS
        if other_model or parts[1] in REFUSED or name in REFUSED_MODULES:
            self.refused.append(name)
            raise ImportError(f"{_MARK}: {name}", name=name)
        return None


def _has_emotion2vec() -> bool:
    from funasr.register import tables

    return "Emotion2vec" in tables.model_classes


def _drop_refusals(funasr: ModuleType) -> None:
    """Remove the refusals from FunASR's record of import failures, which its error messages list
    (e.g. "model ... is not registered"): only real failures stay there."""
    for attr in ("_IMPORT_ERRORS", "_IMPORT_ERROR_TRACEBACKS"):
        record = getattr(funasr, attr, None)
        if isinstance(record, dict):
            for name in [n for n, text in record.items() if _MARK in str(text)]:
                del record[name]


def _forget_funasr() -> None:
    for name in [n for n in sys.modules if n == "funasr" or n.startswith("funasr.")]:
        del sys.modules[name]


def import_funasr() -> ModuleType:
    """Import ``funasr`` (once per process) as described in the module docstring; the package."""
    full = os.environ.get(FULL_IMPORT_ENV, "0")
    if full not in ("0", "1"):
        raise ValueError(f"{FULL_IMPORT_ENV} must be 0 or 1, got {full!r}")
    if "funasr" in sys.modules:
        return sys.modules["funasr"]
    if full == "1" or os.environ.get("FUNASR_STRICT_IMPORT") == "1":
        import funasr

        return funasr
    finder = _Refuse()
    sys.meta_path.insert(0, finder)
    try:
        import funasr
    finally:
        sys.meta_path.remove(finder)
    if _has_emotion2vec():
        _drop_refusals(funasr)
        return funasr
    log.warning("FunASR without its other models lacks Emotion2vec (%d modules refused); importing it in full",
                len(finder.refused))
    _forget_funasr()
    import funasr

    return funasr
