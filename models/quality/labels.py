"""Labelled sets: a CSV file, one item per row (the seed's method: audio, its label, its recording scenario).

Columns (a header row is required; other columns are kept in ``extra``):

* ``audio``: a WAV file (relative paths: to the CSV's folder), or ``call_id`` with optional ``start_s``/``end_s``
  (seconds into the call) and ``role``: a stored call's audio;
* ``label``: the class, in emowatch's names (``angry``), the model's tokens (``生气/angry``, ``<unk>``) or the
  tokens' Chinese names alone (``生气``);
* the scenario (column ``scenario`` unless told otherwise; absent: every item is in scenario ``all``).

A bad row is rejected with the file, the line and the reason; nothing is skipped silently.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from emowatch.models.checkpoint import TOKENS
from emowatch.models.quality.errors import QualityError
from emowatch.topics.model_io import EMOTIONS

__all__ = ["DEFAULT_SCENARIO", "LabelledItem", "audio_path", "normalize_label", "read_labels"]

DEFAULT_SCENARIO = "all"
"""The scenario of every item of a set without a scenario column."""

_NAMES: dict[str, str] = {e: e for e in EMOTIONS}
for _token, _english in zip(TOKENS, EMOTIONS):
    _NAMES[_token.lower()] = _english
    _NAMES[_token.split("/", 1)[0].lower()] = _english  # 生气 -> angry; <unk> -> unknown


@dataclass(frozen=True)
class LabelledItem:
    """One labelled row: its audio (a file, or a call and a span), its class and scenario."""

    line: int
    label: str
    scenario: str = DEFAULT_SCENARIO
    audio: Path | None = None
    call_id: str | None = None
    start_s: float | None = None
    end_s: float | None = None
    role: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> str:
        """A readable identity of the item (file name, or call and span)."""
        if self.audio is not None:
            return self.audio.name
        span = "" if self.start_s is None and self.end_s is None else f"@{self.start_s or 0:g}-{self.end_s or '':}"
        return f"{self.call_id}{span}"


def normalize_label(text: str) -> str:
    """A label in any accepted spelling -> emowatch's class name; :class:`QualityError` if it is none."""
    name = _NAMES.get(text.strip().lower())
    if name is None:
        raise QualityError(f"unknown label {text!r} (expected one of {', '.join(EMOTIONS)} or the model's tokens)")
    return name


def _seconds(row: dict[str, str], col: str, where: str) -> float | None:
    raw = (row.get(col) or "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise QualityError(f"{where}: {col} {raw!r} is not a number of seconds") from None
    if value < 0:
        raise QualityError(f"{where}: {col} {raw!r} is negative")
    return value


def audio_path(raw: str, labels_file: Path, where: str, require: bool = True) -> Path:
    """A labels file's ``audio`` cell as a path (relative: to the file's folder); with ``require``, it must exist."""
    audio = Path(raw) if Path(raw).is_absolute() else labels_file.parent / raw
    if require and not audio.is_file():
        raise QualityError(f"{where}: audio file {audio} not found")
    return audio


def read_labels(path: str | Path, *, scenario_column: str = "scenario", label_column: str = "label",
                require_audio_files: bool = True) -> list[LabelledItem]:
    """The items of a labelled CSV file (see the module's text)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as exc:
        raise QualityError(f"{path}: cannot read the labels: {exc.strerror or exc}") from None
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    if label_column not in header:
        raise QualityError(f"{path}:1: no {label_column!r} column (columns: {header})")
    if "audio" not in header and "call_id" not in header:
        raise QualityError(f"{path}:1: needs an 'audio' or a 'call_id' column (columns: {header})")
    known = {"audio", "call_id", "start_s", "end_s", "role", label_column, scenario_column}
    items: list[LabelledItem] = []
    for row in reader:
        where = f"{path}:{reader.line_num}"
        try:
            label = normalize_label(row.get(label_column) or "")
        except QualityError as exc:
            raise QualityError(f"{where}: {exc}") from None
        audio_raw = (row.get("audio") or "").strip()
        call_id = (row.get("call_id") or "").strip() or None
        if not audio_raw and not call_id:
            raise QualityError(f"{where}: neither audio nor call_id given")
        audio = audio_path(audio_raw, path, where, require_audio_files) if audio_raw else None
        start_s, end_s = _seconds(row, "start_s", where), _seconds(row, "end_s", where)
        if start_s is not None and end_s is not None and end_s <= start_s:
            raise QualityError(f"{where}: end_s {end_s:g} is not after start_s {start_s:g}")
        scenario = (row.get(scenario_column) or "").strip() or DEFAULT_SCENARIO
        items.append(LabelledItem(line=reader.line_num, label=label, scenario=scenario, audio=audio,
                                  call_id=call_id, start_s=start_s, end_s=end_s,
                                  role=(row.get("role") or "").strip() or None,
                                  extra={k: v for k, v in row.items() if k not in known and k is not None}))
    if not items:
        raise QualityError(f"{path}: no labelled rows")
    return items
