"""Query parameters and headers of the audio routes -> checked ingest options. Pure.

``encoding`` (``wav`` by default, or from ``Content-Type: audio/wav``), ``sample_rate``/``channels``
(raw PCM), ``business_line`` (or header ``X-Emowatch-Business-Line``), ``role``, ``ends``,
``attr.<name>=<value>`` (or headers ``X-Emowatch-Attr-<name>``; header names arrive lower-cased).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from emowatch.streams.gateway.ingest import RAW_ENCODINGS, IngestError
from emowatch.streams.infer.scoring import ROLES

__all__ = ["IngestOptions", "ingest_options", "parse_bool"]

_ATTR_HEADER = "x-emowatch-attr-"
_TRUE, _FALSE = {"true", "1", "yes", "on"}, {"false", "0", "no", "off"}
_WAV_TYPES = {"audio/wav", "audio/x-wav", "audio/wave", "audio/vnd.wave"}
MAX_TEXT = 256


@dataclass(frozen=True)
class IngestOptions:
    encoding: str = "wav"
    sample_rate: int | None = None
    channels: int | None = None
    business_line: str = "default"
    role: str = "MIXED"
    ends: bool = True
    attributes: dict[str, str] = field(default_factory=dict)


def _bad(message: str) -> IngestError:
    return IngestError("bad_parameter", message)


def parse_bool(name: str, value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    v = value.strip().lower()
    if v in _TRUE:
        return True
    if v in _FALSE:
        return False
    raise _bad(f"{name}={value!r} is not true or false")


def _int(name: str, value: str | None) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(value)
    except ValueError:
        raise _bad(f"{name}={value!r} is not an integer") from None


def _text(name: str, value: str) -> str:
    if not value.strip() or len(value) > MAX_TEXT:
        raise _bad(f"{name} must be 1-{MAX_TEXT} characters")
    return value


def ingest_options(query: Iterable[tuple[str, str]], headers: Mapping[str, str],
                   content_type: str | None = None) -> IngestOptions:
    """Options of one upload or stream; :class:`IngestError` (``bad_parameter``, ``unsupported_encoding``)
    for anything malformed. ``query`` is the (name, value) pairs of the query string."""
    q: dict[str, str] = {}
    attrs: dict[str, str] = {}
    for name, value in headers.items():
        if name.lower().startswith(_ATTR_HEADER) and len(name) > len(_ATTR_HEADER):
            attrs[name.lower()[len(_ATTR_HEADER):]] = _text(name, value)
    for name, value in query:
        if name.startswith("attr."):
            if len(name) == len("attr."):
                raise _bad("attr. needs a name: attr.<name>=<value>")
            attrs[name[len("attr."):]] = _text(name, value)
        else:
            q[name] = value
    encoding = q.get("encoding")
    if not encoding:
        ctype = (content_type or "").split(";")[0].strip().lower()
        encoding = "wav" if not ctype or ctype in _WAV_TYPES or ctype == "application/octet-stream" else ctype
    encoding = encoding.lower()
    if encoding != "wav" and encoding not in RAW_ENCODINGS:
        raise IngestError("unsupported_encoding",
                          f"encoding {encoding!r} is not one of wav, {', '.join(RAW_ENCODINGS)}")
    role = q.get("role", "MIXED").upper()
    if role not in ROLES:
        raise _bad(f"role={q.get('role')!r} is not one of {', '.join(ROLES)}")
    business_line = q.get("business_line") or headers.get("x-emowatch-business-line") or "default"
    return IngestOptions(
        encoding=encoding, sample_rate=_int("sample_rate", q.get("sample_rate")),
        channels=_int("channels", q.get("channels")), business_line=_text("business_line", business_line),
        role=role, ends=parse_bool("ends", q.get("ends"), True), attributes=attrs)
