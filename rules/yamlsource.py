"""YAML loading that remembers where every key and item came from.

PyYAML's ``safe_load`` forgets positions, so a pydantic error such as
``rules.0.when.emotion: unknown emotion`` could not be reported as ``file:12: ...``.
Here the document is composed into nodes (which carry start marks) and converted to
plain Python data while a ``path -> (line, column)`` table is filled in; a pydantic
error location is then mapped back to the nearest recorded path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yaml

from emowatch.topics.errors import EmowatchError

try:  # libyaml is much faster; fall back to the pure-Python loader
    _Loader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - depends on the PyYAML build
    _Loader = yaml.SafeLoader

Path = tuple[Any, ...]


@dataclass
class SourceDoc:
    """Parsed YAML data plus positions (1-based line, column) by path."""

    data: Any
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    problems: list[tuple[int, int, str]] = field(default_factory=list)

    def position(self, loc: Iterable[Any]) -> tuple[int, int]:
        """Position of the deepest known path along ``loc`` (unknown parts are skipped).

        Parts of a pydantic location that are not keys in the document (union tags,
        model names) are skipped; a missing key resolves to its parent mapping.
        """
        current: Path = ()
        for part in loc:
            candidate = current + (part,)
            if candidate in self.positions:
                current = candidate
        return self.positions.get(current, (1, 1))


class YamlSyntaxError(EmowatchError, ValueError):
    """YAML that cannot be parsed; carries the 1-based line and column."""

    def __init__(self, line: int, column: int, reason: str) -> None:
        super().__init__(reason)
        self.line, self.column, self.reason = line, column, reason


def load_yaml_with_positions(text: str) -> SourceDoc:
    """Parse one YAML document, recording positions; raise :class:`YamlSyntaxError`."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        doc = SourceDoc(data=None)
        if node is None:
            return doc
        doc.positions[()] = _mark(node)
        doc.data = _convert(loader, node, (), doc)
        return doc
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark is not None else (0, 0)
        reason = " ".join(p for p in (exc.context, exc.problem) if p) or "invalid YAML"
        raise YamlSyntaxError(line, col, f"invalid YAML: {reason}") from exc
    except yaml.YAMLError as exc:
        raise YamlSyntaxError(0, 0, f"invalid YAML: {exc}") from exc
    finally:
        loader.dispose()


def _mark(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def _convert(loader: Any, node: yaml.Node, path: Path, doc: SourceDoc) -> Any:
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)  # YAML merge keys (<<)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, (str, int, float, bool)) or key is None:
                line, col = _mark(key_node)
                doc.problems.append((line, col, f"unsupported mapping key {key!r}"))
                continue
            if key in out:
                line, col = _mark(key_node)
                first = doc.positions.get(path + (key,), (0, 0))[0]
                doc.problems.append((line, col, f"duplicate key {key!r} (first defined at line {first})"))
                continue
            doc.positions[path + (key,)] = _mark(key_node)
            out[key] = _convert(loader, value_node, path + (key,), doc)
        return out
    if isinstance(node, yaml.SequenceNode):
        items = []
        for index, item in enumerate(node.value):
            doc.positions[path + (index,)] = _mark(item)
            items.append(_convert(loader, item, path + (index,), doc))
        return items
    return loader.construct_object(node, deep=True)


@dataclass(eq=True)
class SourceFileError(EmowatchError):
    """One problem in a YAML source file (a rule file, a notifier config), as data.

    ``str(err)`` is ``file:line: reason`` (the compiler-style format editors jump to).
    ``line`` and ``column`` are 1-based; ``line`` is 0 when the position is unknown. When
    raised by a parser, ``errors`` lists every problem found in the file (this one first).
    Subclasses name the kind of file; they add no fields.
    """

    file: str
    line: int
    column: int
    reason: str
    errors: list[SourceFileError] = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        super().__init__(str(self))

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"

    def __hash__(self) -> int:
        return hash((self.file, self.line, self.column, self.reason))


def parse_document(text: str, name: str, error: type[SourceFileError],
                   not_mapping: str) -> tuple[SourceDoc | None, list[SourceFileError]]:
    """Load ``text`` with positions for a file whose top level must be a mapping (``not_mapping``
    is the reason reported when it is not). Returns the document and the problems found so far
    (syntax errors, duplicate keys) as ``error`` instances; the document is None when the file
    cannot be read as a mapping."""
    try:
        doc = load_yaml_with_positions(text)
    except YamlSyntaxError as exc:
        return None, [error(name, exc.line, exc.column, exc.reason)]
    errors = [error(name, line, col, reason) for line, col, reason in doc.problems]
    if not isinstance(doc.data, dict):
        errors.append(error(name, 1, 1, not_mapping))
        return None, errors
    return doc, errors


def data_path(loc: tuple[Any, ...], doc: SourceDoc) -> tuple[Any, ...]:
    """The part of a pydantic error location that names keys present in the document."""
    path: tuple[Any, ...] = ()
    for part in loc:
        if path + (part,) in doc.positions:
            path += (part,)
    return path


def dotted(path: tuple[Any, ...]) -> str:
    """``("rules", 0, "when")`` -> ``rules[0].when``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


def validation_errors(exc: Any, doc: SourceDoc, name: str, error: type[SourceFileError]) -> list[SourceFileError]:
    """A pydantic ``ValidationError`` as ``error`` instances at the lines of the offending keys."""
    out = []
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        line, col = doc.position(loc)
        path = data_path(loc, doc)
        msg = str(err["msg"]).removeprefix("Value error, ").removeprefix("Assertion failed, ")
        if err["type"] == "extra_forbidden":
            reason = f"unknown key {loc[-1]!r} in {dotted(path[:-1]) or 'the top level'}"
        elif err["type"] == "missing":
            reason = f"missing required key {loc[-1]!r} in {dotted(path) or 'the top level'}"
        else:
            reason = f"{dotted(path)}: {msg}" if path else msg
        out.append(error(name, line, col, reason))
    return out


def sorted_errors(errors: list[SourceFileError]) -> list[SourceFileError]:
    """Distinct errors in file order."""
    return sorted(dict.fromkeys(errors), key=lambda e: (e.line, e.column))
