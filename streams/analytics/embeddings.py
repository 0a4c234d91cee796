"""``emowatch export embeddings``: a call's stored chunk embeddings as ``.npy`` files, like the seed's
``embedding_path`` files, recorded in ``embedding_files`` so that ``emotion_records.embedding_path`` is the
real path.

Files: ``OUT/<call_id>/<role>_<seq>.npy`` (float32, the chunk's ``scores.embedding``). Idempotent: a second
export writes the same files again and inserts rows with the same key (``call_id, role, seq``), which the
ReplacingMergeTree collapses (the view reads the newest path per key, merged or not). The inference agent
stores embeddings only with ``EMOWATCH_MODEL__EMBEDDINGS=true``; chunks without one are counted, not written.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from emowatch.streams.analytics.runner import AnalyticsError, NoScores

__all__ = ["EMBEDDINGS_SETTING", "Export", "export_embeddings", "safe_call_dir"]

#: the setting that makes the inference agent store an embedding per chunk (streams/settings.py ModelSettings)
EMBEDDINGS_SETTING = "EMOWATCH_MODEL__EMBEDDINGS=true"
_SAFE = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_COLUMNS = ["call_id", "role", "seq", "path", "dims"]


@dataclass
class Export:
    """What an export did: the files written (in role, seq order), chunks without an embedding, chunks seen."""

    call_id: str
    files: list[Path] = field(default_factory=list)
    missing: int = 0
    chunks: int = 0


def safe_call_dir(out: Path, call_id: str) -> Path:
    """``out/<call_id>``; :class:`AnalyticsError` for a call id that is not a plain file name (the gateway's
    call ids, ``[A-Za-z0-9._:-]``, are)."""
    if not _SAFE.fullmatch(call_id) or call_id in (".", ".."):
        raise AnalyticsError(f"call id {call_id!r} cannot be a folder name: export needs 1-128 characters of "
                             "A-Z a-z 0-9 . _ : -")
    return Path(out) / call_id


def export_embeddings(client: Any, database: str, call_id: str, out: Path, role: str | None = None) -> Export:
    """Write the call's embeddings under ``out`` and record them; :class:`NoScores` when the call has no
    stored chunk (of ``role``)."""
    folder = safe_call_dir(out, call_id)
    params: dict[str, Any] = {"call": call_id}
    role_cond = ""
    if role is not None:
        role_cond, params["role"] = "AND role = {role:String}", role
    try:
        res = client.query(f"SELECT role, seq, embedding FROM {database}.scores FINAL "
                           f"WHERE call_id = {{call:String}} {role_cond} ORDER BY role, seq", parameters=params)
    except Exception as exc:  # noqa: BLE001
        raise AnalyticsError(f"reading the call's embeddings failed: {type(exc).__name__}: {exc}") from exc
    if not res.result_rows:
        raise NoScores(f"no scores stored for call {call_id!r}" + (f" and role {role!r}" if role else ""))
    done = Export(call_id, chunks=len(res.result_rows))
    rows = []
    for r_role, seq, embedding in res.result_rows:
        if not embedding:
            done.missing += 1
            continue
        folder.mkdir(parents=True, exist_ok=True)
        path = (folder / f"{r_role}_{seq}.npy").resolve()
        np.save(path, np.asarray(embedding, dtype=np.float32))
        done.files.append(path)
        rows.append([call_id, r_role, int(seq), str(path), len(embedding)])
    if rows:
        try:
            client.insert("embedding_files", rows, database=database, column_names=_COLUMNS)
        except Exception as exc:  # noqa: BLE001
            raise AnalyticsError(f"the files are written, but recording them in embedding_files failed: "
                                 f"{type(exc).__name__}: {exc}") from exc
    return done
