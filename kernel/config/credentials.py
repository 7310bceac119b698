"""Find credentials written literally in a config file, for the permission check.

A file that holds a credential itself (rather than a ``${VAR}`` reference) must not be
world-readable; the loader asks this module before the file is validated or used.
"""

from __future__ import annotations

from collections.abc import Iterator

from kernel.config.expand import is_reference_only
from kernel.config.schema import SCHEMA, Field, FieldType, is_credential_key
from kernel.config.yaml_source import MapNode, SeqNode, YNode


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def literal_credentials(root: MapNode) -> list[tuple[str, int]]:
    """``(dotted key, line)`` of every credential written in the file itself.

    A credential value that is only ``${VAR}`` references keeps the secret out of the file;
    anything else (literal text, a ``${VAR:-default}`` default, a number) is literal.
    """
    return list(_literals(SCHEMA, root, ""))


def _literals(spec: Field, node: YNode, dotted: str) -> Iterator[tuple[str, int]]:
    if not isinstance(node, MapNode):
        return
    for entry in node.entries:
        key = _join(dotted, entry.key)
        child = spec.child(entry.key)
        if child is not None and child.type is FieldType.SECTION:
            yield from _literals(child, entry.value, key)
        elif child is not None and child.type is FieldType.MAP and child.item is not None:
            if isinstance(entry.value, MapNode):
                for named in entry.value.entries:
                    yield from _literals(child.item, named.value, _join(key, named.key))
        elif child is not None:
            if child.credential:
                yield from _literal_values(entry.value, key, entry.line)
        elif spec.extra is not None:
            yield from _setting_literals(entry.value, key, entry.line, is_credential_key(entry.key))


def _setting_literals(
    node: YNode, dotted: str, line: int, credential: bool
) -> Iterator[tuple[str, int]]:
    if credential:
        yield from _literal_values(node, dotted, line)
    elif isinstance(node, MapNode):
        for entry in node.entries:
            yield from _setting_literals(
                entry.value, _join(dotted, entry.key), entry.line, is_credential_key(entry.key)
            )
    elif isinstance(node, SeqNode):
        for index, item in enumerate(node.items):
            yield from _setting_literals(item, f"{dotted}[{index}]", item.line, False)


def _literal_values(node: YNode, dotted: str, line: int) -> Iterator[tuple[str, int]]:
    if isinstance(node, MapNode):
        for entry in node.entries:
            yield from _literal_values(entry.value, _join(dotted, entry.key), entry.line)
    elif isinstance(node, SeqNode):
        for item in node.items:
            yield from _literal_values(item, dotted, item.line)
    elif node.value is not None and not (
        isinstance(node.value, str) and is_reference_only(node.value)
    ):
        yield dotted, line
