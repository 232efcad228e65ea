"""YAML for sweep specs: numbers like ``1e-5``, the line of every key, JSON values only.

:func:`parse` returns a :class:`Document`: the parsed data plus the line of each key path,
so a problem found later can be reported as ``file:line: dotted.key: message``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import yaml

from hypero.errors import SpecError

KeyPath = tuple[str | int, ...]

_STR = "tag:yaml.org,2002:str"
_FLOAT = "tag:yaml.org,2002:float"
_TIMESTAMP = "tag:yaml.org,2002:timestamp"
_SCALARS = {_STR, _FLOAT, "tag:yaml.org,2002:int", "tag:yaml.org,2002:bool",
            "tag:yaml.org,2002:null"}
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
_MERGE = "tag:yaml.org,2002:merge"

# YAML 1.1's float needs a dot and a signed exponent, so `1e-5` and `1.0e5` would be strings;
# this is YAML 1.2's float (plus 1.1's base-60 form, which PyYAML's constructor understands).
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+
    |[-+]?\.[0-9][0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)


class _Loader(yaml.SafeLoader):
    """SafeLoader that reads ``1e-5`` as a float and leaves dates as strings (JSON has none)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag not in (_FLOAT, _TIMESTAMP)]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(_FLOAT, _FLOAT_RE, list("-+0123456789."))


class Invalid(Exception):
    """A problem at a key path of the document; turned into a :class:`SpecError` with its line."""

    def __init__(self, path: KeyPath, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


def dotted(path: KeyPath) -> str:
    """``("parameters", "lr", "min")`` -> ``parameters.lr.min``; list indices as ``[i]``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@dataclass
class Document:
    """Parsed YAML and the 1-based line of each key path (the key's line, or the item's)."""

    file: str
    data: Any
    lines: dict[KeyPath, int] = field(default_factory=dict)

    def line(self, path: KeyPath) -> int:
        """The line of ``path``, else of its deepest known prefix (a missing key's parent)."""
        for n in range(len(path), -1, -1):
            if path[:n] in self.lines:
                return self.lines[path[:n]]
        return 1

    def error(self, path: KeyPath, message: str) -> SpecError:
        return SpecError(message, file=self.file, line=self.line(path), key=dotted(path) or None)

    def note(self, path: KeyPath, message: str) -> str:
        return str(self.error(path, message))


def parse(text: str, file: str) -> Document:
    """Parse one YAML document; syntax errors and non-JSON values raise :class:`SpecError`."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        doc = Document(file, None)
        if node is not None:
            doc.lines[()] = node.start_mark.line + 1
            _walk(node, (), doc, set())
            doc.data = loader.construct_document(node)
        return doc
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        where = f" (column {mark.column + 1})" if mark is not None else ""
        problem = e.problem or e.context or "invalid YAML"
        raise SpecError(f"YAML syntax error: {problem}{where}", file=file,
                        line=mark.line + 1 if mark is not None else None) from None
    except yaml.YAMLError as e:
        raise SpecError(f"YAML error: {e}", file=file) from None
    finally:
        loader.dispose()


def _walk(node: yaml.Node, path: KeyPath, doc: Document, active: set[int]) -> None:
    """Record lines, and refuse what JSON cannot hold: non-string keys, dates, sets, cycles."""
    if id(node) in active:
        raise doc.error(path, "a YAML alias refers to itself; a spec must be a tree")
    if isinstance(node, yaml.ScalarNode):
        if node.tag not in _SCALARS:
            raise doc.error(path, f"{node.tag} is not a JSON value (got {node.value!r})")
        return
    active.add(id(node))
    if isinstance(node, yaml.SequenceNode) and node.tag == _SEQ:
        for i, item in enumerate(node.value):
            doc.lines.setdefault((*path, i), item.start_mark.line + 1)
            _walk(item, (*path, i), doc, active)
    elif isinstance(node, yaml.MappingNode) and node.tag == _MAP:
        _walk_mapping(node, path, doc, active)
    else:
        raise doc.error(path, f"{node.tag} is not a JSON value")
    active.discard(id(node))


def _walk_mapping(node: yaml.MappingNode, path: KeyPath, doc: Document, active: set[int]) -> None:
    merged = any(k.tag == _MERGE for k, _ in node.value)
    seen: dict[str, int] = {}
    for key_node, value_node in node.value:
        line = key_node.start_mark.line + 1
        if key_node.tag == _MERGE:
            _walk(value_node, path, doc, active)
            continue
        if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _STR:
            shown = key_node.value if isinstance(key_node, yaml.ScalarNode) else "?"
            doc.lines[(*path, shown)] = line
            raise doc.error((*path, shown), "keys must be strings: quote this key")
        key = key_node.value
        doc.lines[(*path, key)] = line
        if key in seen and not merged:
            raise doc.error((*path, key), f"duplicate key (first given on line {seen[key]})")
        seen[key] = line
        _walk(value_node, (*path, key), doc, active)
