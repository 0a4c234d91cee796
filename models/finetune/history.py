"""Stored chunk embeddings of labelled calls (``emowatch model finetune-head --from-history``).

The ClickHouse sink stores each chunk's embedding in ``scores.embedding`` when the inference agent runs with
``EMOWATCH_MODEL__EMBEDDINGS=true``: the mean feature of the chunk's own frames, the input of the head. A labelled
row with ``call_id`` (and optional ``role``, ``start_s``/``end_s`` in seconds into the call) gives one example per
stored chunk of that call (and role) overlapping the span, labelled with the row's label; ``since`` keeps chunks
whose event time is at or after it. Only chunks scored by the model being fine-tuned count (``model_version``):
another model's embeddings come from another encoder, and a head trained on them would be wrong for this one.

Rows are read like the other history reads (``FROM <database>.scores FINAL``). A labelled row without any usable
chunk is *missing*; :class:`HistoryExamples` says why for each, and the job stops on them unless told to skip.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from emowatch.models.finetune.examples import Examples
from emowatch.models.quality.errors import QualityError
from emowatch.models.quality.labels import LabelledItem
from emowatch.streams.analytics.embeddings import EMBEDDINGS_SETTING

__all__ = ["HistoryExamples", "Missing", "history_examples"]

_SQL = ("SELECT call_id, role, seq, start_ms, n_frames, frame_ms, model_version, embedding "
        "FROM {db}.scores FINAL WHERE call_id IN {{calls:Array(String)}}{since} ORDER BY call_id, role, seq")
_SINCE = " AND ts >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')"


@dataclass(frozen=True)
class Missing:
    """A labelled call row without a usable stored chunk, and why."""

    line: int
    key: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line} ({self.key}): {self.reason}"


@dataclass
class HistoryExamples:
    """The examples found, the rows without any, and the stored chunks left out by reason."""

    examples: Examples
    missing: list[Missing] = field(default_factory=list)
    no_embedding: int = 0  #: chunks of the calls (in span) stored without an embedding
    other_model: dict[str, int] = field(default_factory=dict)  #: model_version -> chunks (in span) of another model


def _overlaps(item: LabelledItem, start_ms: int, n_frames: int, frame_ms: int) -> bool:
    end_ms = start_ms + n_frames * frame_ms
    lo = 0.0 if item.start_s is None else item.start_s * 1000.0
    hi = float("inf") if item.end_s is None else item.end_s * 1000.0
    return start_ms < hi and end_ms > lo


def _query(client: Any, database: str, calls: list[str], since_ms: int | None) -> list[tuple]:
    params: dict[str, Any] = {"calls": calls}
    if since_ms is not None:
        params["since"] = int(since_ms)
    sql = _SQL.format(db=database, since=_SINCE if since_ms is not None else "")
    try:
        return [tuple(r) for r in client.query(sql, parameters=params).result_rows]
    except Exception as exc:  # noqa: BLE001 - clickhouse-connect / chDB raise assorted types
        raise QualityError(f"reading the stored embeddings failed: {type(exc).__name__}: {str(exc)[:500]}") from exc


def history_examples(client: Any, database: str, items: Sequence[LabelledItem], *, model_version: str,
                     since_ms: int | None = None) -> HistoryExamples:
    """The stored chunk embeddings of ``items`` (each must have ``call_id``) scored by ``model_version``."""
    bad = [it for it in items if it.call_id is None]
    if bad:
        raise QualityError(f"line {bad[0].line}: --from-history needs a call_id on every row it reads")
    by_call: dict[str, list[tuple]] = {}
    for row in _query(client, database, sorted({it.call_id for it in items if it.call_id}), since_ms):
        by_call.setdefault(str(row[0]), []).append(row)
    found = HistoryExamples(Examples(np.zeros((0, 0), np.float32), [], np.zeros(0, np.int64)))
    xs: list[np.ndarray] = []
    labels: list[str] = []
    groups: list[int] = []
    keys: list[str] = []
    for it in items:
        rows = by_call.get(str(it.call_id), [])
        role = it.role.upper() if it.role else None
        chosen = [r for r in rows if (role is None or r[1] == role) and _overlaps(it, int(r[3]), int(r[4]),
                                                                                   int(r[5]))]
        usable = [r for r in chosen if r[6] == model_version and len(r[7])]
        found.no_embedding += sum(1 for r in chosen if not len(r[7]))
        for r in chosen:
            if r[6] != model_version and len(r[7]):
                found.other_model[str(r[6])] = found.other_model.get(str(r[6]), 0) + 1
        if not usable:
            found.missing.append(Missing(it.line, it.key, _why(rows, chosen, model_version, since_ms, role)))
            continue
        for r in usable:
            xs.append(np.asarray(r[7], dtype=np.float32))
            labels.append(it.label)
            groups.append(it.line)
            keys.append(f"{r[0]}/{r[1]}#{r[2]}")
    dims = sorted({len(x) for x in xs})
    if len(dims) > 1:
        raise QualityError(f"stored embeddings of model version {model_version} have different sizes {dims}")
    if xs:
        found.examples = Examples(np.stack(xs), labels, np.array(groups, dtype=np.int64), keys)
    return found


def _why(rows: list[tuple], chosen: list[tuple], model_version: str, since_ms: int | None, role: str | None) -> str:
    when = " since --since" if since_ms is not None else ""
    if not rows:
        return f"no stored chunks of this call{when}"
    if not chosen:
        return f"no stored chunk{' of role ' + role if role else ''} in the span{when} ({len(rows)} chunk(s) " \
               "of the call elsewhere)"
    if not any(len(r[7]) for r in chosen):
        return f"{len(chosen)} chunk(s) stored without an embedding (the inference agent stores them with " \
               f"{EMBEDDINGS_SETTING})"
    versions = sorted({str(r[6]) for r in chosen if len(r[7])})
    return f"embeddings only of model version(s) {', '.join(versions)}, not {model_version}"
