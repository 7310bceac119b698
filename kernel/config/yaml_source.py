"""YAML text → a small tree of nodes that remember their line, for ``file:line`` messages.

PyYAML's safe composer does the parsing; this module turns its nodes into :class:`MapNode`,
:class:`SeqNode` and :class:`ScalarNode` and translates every ``yaml`` exception into a
:class:`ConfigError`, so nothing from PyYAML leaves the package.

Rules beyond plain YAML, all for predictability:

- one document whose top level is a mapping; an empty file is an error;
- mapping keys are plain scalars, taken as their source text (``on:`` is the key ``"on"``);
- duplicate keys are reported (PyYAML keeps the last one silently);
- only the safe tags (str, int, float, bool, null, map, seq); no ``<<`` merge keys;
- booleans are only ``true``/``false`` (any case); ``yes``/``no``/``on``/``off`` stay strings,
  and so do sexagesimal numbers (``1:30``) and timestamps.
"""

from __future__ import annotations

from dataclasses import dataclass

import yaml
from yaml.constructor import ConstructorError, SafeConstructor
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from kernel.errors import ConfigError

Value = str | int | float | bool | None

_TAG = "tag:yaml.org,2002:"
_SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null", "timestamp")}

#: Nodes converted per document; a guard against alias bombs ("billion laughs").
MAX_NODES = 100_000


@dataclass(frozen=True, slots=True)
class Scalar:
    """A scalar value and where it is. ``text`` is the source text before YAML typing."""

    value: Value
    text: str
    line: int
    column: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One ``key: value`` of a mapping; ``line`` is the key's line."""

    key: str
    line: int
    value: YNode


@dataclass(frozen=True, slots=True)
class MapNode:
    """A mapping, entries in file order, keys unique."""

    entries: tuple[Entry, ...]
    line: int
    column: int

    def get(self, key: str) -> Entry | None:
        for entry in self.entries:
            if entry.key == key:
                return entry
        return None


@dataclass(frozen=True, slots=True)
class SeqNode:
    """A sequence."""

    items: tuple[YNode, ...]
    line: int
    column: int


YNode = Scalar | MapNode | SeqNode


@dataclass(frozen=True, slots=True)
class Document:
    """A parsed file: its top-level mapping and the non-fatal problems (duplicate keys)."""

    root: MapNode
    problems: tuple[ConfigError, ...]


def syntax_error(path: str, line: int, column: int, problem: str) -> ConfigError:
    """A :class:`ConfigError` printed as ``file:line:column: problem``."""
    return ConfigError(problem, path=path, line=line, column=column)


def describe(node: YNode) -> str:
    """How a node reads in "expected …, got …" messages."""
    if isinstance(node, MapNode):
        return "a mapping"
    if isinstance(node, SeqNode):
        return "a list"
    if node.value is None:
        return "nothing (null)"
    if isinstance(node.value, str):
        return repr(node.value)
    return node.text


def parse_document(text: str, path: str) -> Document:
    """Parse ``text`` (the contents of ``path``) into a :class:`Document`.

    Raises :class:`ConfigError` for syntax errors (with line and column), an empty file, more
    than one document, a top level that is not a mapping, and unsupported tags.
    """
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        problem = exc.problem or exc.context or "invalid YAML"
        if exc.context and exc.problem:
            problem = f"{exc.problem} ({exc.context})"
        if mark is None:
            raise ConfigError(problem, path=path) from None
        raise syntax_error(path, mark.line + 1, mark.column + 1, problem) from None
    except yaml.YAMLError as exc:
        # ReaderError (control characters, bad encoding) has no mark.
        raise ConfigError(f"not valid YAML: {exc}", path=path) from None
    if node is None or (isinstance(node, ScalarNode) and node.tag == _TAG + "null"):
        raise ConfigError(
            "empty configuration",
            path=path,
            hint="start with `version: 1`; see docs/configuration.md",
        )
    converter = _Converter(path)
    root = converter.convert(node, "")
    if not isinstance(root, MapNode):
        raise ConfigError(
            f"the top level must be a mapping of keys (version: 1, …), got {describe(root)}",
            path=path,
            line=root.line,
        )
    return Document(root, tuple(converter.problems))


class _Converter:
    """Walks PyYAML nodes once, building :data:`YNode` and collecting duplicate keys."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[ConfigError] = []
        self.count = 0
        self.constructor = SafeConstructor()

    def fail(self, node: Node, message: str, key: str | None = None) -> ConfigError:
        return ConfigError(message, path=self.path, line=node.start_mark.line + 1, key=key or None)

    def convert(self, node: Node, dotted: str) -> YNode:
        self.count += 1
        if self.count > MAX_NODES:
            raise self.fail(node, f"more than {MAX_NODES} values (are aliases expanding?)")
        line, column = node.start_mark.line + 1, node.start_mark.column + 1
        if isinstance(node, MappingNode):
            if node.tag != _TAG + "map":
                raise self.fail(node, f"unsupported YAML tag {node.tag!r}", dotted)
            return MapNode(self.entries(node, dotted), line, column)
        if isinstance(node, SequenceNode):
            if node.tag != _TAG + "seq":
                raise self.fail(node, f"unsupported YAML tag {node.tag!r}", dotted)
            items = tuple(self.convert(item, f"{dotted}[{i}]") for i, item in enumerate(node.value))
            return SeqNode(items, line, column)
        assert isinstance(node, ScalarNode)
        return Scalar(self.scalar(node, dotted), str(node.value), line, column)

    def entries(self, node: MappingNode, dotted: str) -> tuple[Entry, ...]:
        seen: dict[str, int] = {}
        entries: list[Entry] = []
        for key_node, value_node in node.value:
            if key_node.tag == _TAG + "merge":
                raise self.fail(key_node, "YAML merge keys (<<) are not supported; repeat the keys")
            if not isinstance(key_node, ScalarNode) or key_node.tag not in _SCALAR_TAGS:
                raise self.fail(key_node, "mapping keys must be plain words", dotted)
            key = str(key_node.value)
            key_line = key_node.start_mark.line + 1
            child = f"{dotted}.{key}" if dotted else key
            value = self.convert(value_node, child)
            if key in seen:
                self.problems.append(
                    ConfigError(
                        f"duplicate key {key!r} (lines {seen[key]} and {key_line}); keep one",
                        path=self.path,
                        line=key_line,
                        key=child,
                    )
                )
                continue
            seen[key] = key_line
            entries.append(Entry(key, key_line, value))
        return tuple(entries)

    def scalar(self, node: ScalarNode, dotted: str) -> Value:
        if node.tag not in _SCALAR_TAGS:
            raise self.fail(node, f"unsupported YAML tag {node.tag!r}", dotted)
        text = str(node.value)
        if node.style is not None or node.tag in (_TAG + "str", _TAG + "timestamp"):
            return text  # quoted or block scalars are always text
        if node.tag == _TAG + "null":
            return None
        if node.tag == _TAG + "bool":
            lowered = text.lower()
            return lowered == "true" if lowered in ("true", "false") else text
        if ":" in text:
            return text  # YAML 1.1 sexagesimal (1:30 == 90) surprises everyone
        try:
            value = self.constructor.construct_object(node)
        except (ConstructorError, ValueError) as exc:
            raise self.fail(node, f"cannot read {text!r}: {exc}", dotted) from None
        assert isinstance(value, int | float)
        return value
