"""``GET /v1/samples`` and ``GET /v1/samples/{name}.wav``: the bundled sample calls, for the console's
upload page (the seed's "load example audio" button). The gateway app includes :data:`router`.

Samples are named by their file's stem (``agitated_01``) and looked up in the bundled manifest only, so
a name can never reach outside the samples folder.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from emowatch.streams.gateway.auth import require_token
from emowatch.streams.gateway.errors import ApiError
from emowatch.streams.resources import sample_manifest

router = APIRouter(tags=["console"], dependencies=[Depends(require_token)])

#: manifest fields the console shows (the rest - seeds, per-segment moods - stay in the manifest)
FIELDS = ("file", "call_id", "business_line", "role", "expected_mood", "duration_s", "sample_rate", "description")


@lru_cache(maxsize=1)
def bundled_samples() -> dict[str, dict[str, Any]]:
    """name (file stem) -> manifest entry with ``path``, in manifest order."""
    return {Path(e["file"]).stem: e for e in sample_manifest()}


@router.get("/v1/samples", summary="The bundled sample calls")
def list_samples() -> dict[str, list[dict[str, Any]]]:
    return {"samples": [{"name": name, **{k: e[k] for k in FIELDS if k in e}, "url": f"/v1/samples/{name}.wav"}
                        for name, e in bundled_samples().items()]}


@router.get("/v1/samples/{name}.wav", summary="One bundled sample call (WAV)",
            responses={200: {"content": {"audio/wav": {}}}, 404: {"description": "unknown_sample"}})
def sample_wav(name: str):
    entry = bundled_samples().get(name)
    if entry is None:
        raise ApiError("unknown_sample", f"no bundled sample named {name!r}", 404)
    return FileResponse(entry["path"], media_type="audio/wav", filename=Path(entry["path"]).name)
