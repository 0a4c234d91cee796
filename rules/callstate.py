"""The conversation state ``c`` of a call in its two forms (:mod:`emowatch.rules.conversation` describes it).

*Stored* (JSON, what ``step`` returns and the rules worker keeps in its table): a pending bin's leaf values as
``[mask of the scored leaves, values...]`` (``None``: none scored), ``v``/``o`` the voice state with role names,
``t`` base64 of the bins' ``(role 0, role 1)`` byte pairs. *In memory* (what
:func:`~emowatch.rules.conversation.run_many` works on and leaves between the messages of
``step_many``/``step_batch``): the leaf values as one flat list per role (nan: not scored), ``g`` the voice state
as floats, ``t`` the bytes of role 0's bins, then role 1's (:func:`talk_rows`). :func:`working_copy` takes either;
:func:`stored_call` gives the stored one.
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np

from emowatch.rules.pending import NAN

ORDER = ("x", "f", "p", "v", "o", "t", "tn", "r", "end")
"""The stored keys, in the order they are stored (the same JSON whatever the call's history)."""
PENDING_ORDER = ("b", "s", "l", "o", "e")


def working_copy(c: dict[str, Any] | None, role_cols: dict[str, Any]) -> dict[str, Any]:
    """A copy of the call state, in memory, that ``run_many`` may change (the input state is never mutated): the
    dicts changed in place are copied (a role's pending dict is replaced when it changes); the rest is shared.
    ``role_cols``: per role its leaves' columns (of the rule set now)."""
    if not c:
        return {}
    if not _in_memory(c):
        return _loaded(c, role_cols)
    out = dict(c)
    if "p" in out:
        out["p"] = dict(out["p"])
    return out


def stored_call(c: dict[str, Any]) -> dict[str, Any]:
    """The stored form of a call state, its keys in :data:`ORDER` (the same object when it is that already)."""
    roles = c.get("x") or []
    parts: dict[str, Any] = {}
    for key, value in c.items():
        if key == "g":
            parts.update(_stored_voice(value, roles))
        elif key == "t":
            parts["t"] = _stored_talk(value) if isinstance(value, bytes) else value
        elif key == "p":
            pend = {r: _stored_pending(p) for r, p in value.items()}
            parts["p"] = value if all(pend[r] is p for r, p in value.items()) else pend
        else:
            parts[key] = value
    out = {k: parts.pop(k) for k in ORDER if k in parts}
    out.update(parts)
    return c if list(out) == list(c) and all(v is c[k] for k, v in out.items()) else out


def _in_memory(c: dict[str, Any]) -> bool:
    """Nothing of ``c`` is in the stored form (what both forms share counts as in memory)."""
    if "g" in c:  # only run_many's states have it, all in memory
        return True
    if "v" in c or "o" in c or isinstance(c.get("t"), str):
        return False
    return all(_pending_in_memory(p) for p in (c.get("p") or {}).values())


def _pending_in_memory(p: dict[str, Any]) -> bool:
    leaves = p.get("l")
    return not leaves or isinstance(leaves[0], float)


def _pending_stored(p: dict[str, Any]) -> bool:
    leaves = p.get("l")
    return leaves is not None and len(leaves) == len(p["s"]) and not (leaves and isinstance(leaves[0], float))


def _stored_pending(p: dict[str, Any]) -> dict[str, Any]:
    parts = dict(p)
    if not _pending_stored(p):
        flat, n = p["l"], len(p["s"])
        width = len(flat) // n if n and len(flat) % n == 0 else 0
        rows: list[Any] = []
        for j in range(n):
            values = flat[j * width:(j + 1) * width]
            mask = sum(1 << i for i, x in enumerate(values) if x == x)
            rows.append([mask, *(x if x == x else 0.0 for x in values)] if mask else None)
        parts["l"] = rows
    out = {k: parts.pop(k) for k in PENDING_ORDER if k in parts}
    out.update(parts)
    return p if list(out) == list(p) and all(v is p[k] for k, v in out.items()) else out


def _stored_voice(g: list[float], roles: list[str]) -> dict[str, Any]:
    """``g`` (per role the last speech end, then per role the run start, then the overlap's start, end, who) as
    ``v`` and ``o``."""
    k = len(roles)
    out: dict[str, Any] = {"v": {r: [_py(e), _py(s)] for r, e, s in zip(roles, g[:k], g[k:2 * k]) if e == e}}
    start, end, who = g[2 * k:2 * k + 3]
    if end == end:
        out["o"] = [_py(start), _py(end), "" if who == 0 else roles[int(who) - 1]]
    return out


def _loaded(c: dict[str, Any], role_cols: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in c.items():
        if key == "p":
            out["p"] = {r: _loaded_pending(p, len(role_cols.get(r, ()))) for r, p in value.items()}
        elif key in ("v", "o"):
            if "g" not in out:
                out["g"] = _loaded_voice(c)
        elif key == "t":
            out["t"] = _loaded_talk(value) if isinstance(value, str) else value
        else:
            out[key] = value
    return out


def _loaded_pending(p: dict[str, Any], width: int) -> dict[str, Any]:
    if _pending_in_memory(p):
        return p
    flat: list[float] = []
    for row in p["l"]:
        if row is None or len(row) != width + 1:  # none scored (or another rule set's leaves)
            flat += [NAN] * width
        else:
            mask = int(row[0])
            flat += [float(x) if mask >> i & 1 else NAN for i, x in enumerate(row[1:])]
    return {**p, "l": flat}


def _loaded_voice(c: dict[str, Any]) -> list[float]:
    roles = c["x"]
    voice = c.get("v") or {}
    pairs = [voice.get(r) or (None, None) for r in roles]
    o = c.get("o")
    overlap = [NAN, NAN, NAN] if not o else [float(o[0]), float(o[1]), 0.0 if not o[2] else roles.index(o[2]) + 1.0]
    return [_num(e) for e, _ in pairs] + [_num(s) for _, s in pairs] + overlap


def talk_rows(raw: bytes | None, longest: int) -> bytes:
    """The in-memory talk history ``raw`` as exactly ``longest`` bins per role: the last ones, zeros before the
    history began (``raw`` may hold another number: a rule-set reload)."""
    if raw is None:
        return bytes(2 * longest)
    if len(raw) == 2 * longest:
        return raw
    rows = np.frombuffer(raw, dtype=np.uint8).reshape(2, -1)
    out = np.zeros((2, longest), dtype=np.uint8)
    keep = min(longest, rows.shape[1])
    if keep:
        out[:, longest - keep:] = rows[:, rows.shape[1] - keep:]
    return out.tobytes()


def _stored_talk(raw: bytes) -> str:
    return base64.b64encode(np.frombuffer(raw, dtype=np.uint8).reshape(2, -1).T.tobytes()).decode("ascii")


def _loaded_talk(text: str) -> bytes:
    return np.frombuffer(base64.b64decode(text), dtype=np.uint8).reshape(-1, 2).T.tobytes()


def _num(x: Any) -> float:
    return NAN if x is None else float(x)


def _py(x: float) -> int | float | None:
    if x != x:
        return None
    return int(x) if x.is_integer() else x
