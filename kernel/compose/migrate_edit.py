"""The new compose texts of ``docker dso migrate``: the original text with scalars replaced.

The files are edited as text, not re-serialised: PyYAML's node marks give the exact span of each
value, which is replaced by its reference; everything else (comments, order, quoting, blank
lines, line endings) stays byte for byte. Variables that came from an ``env_file`` are added to
the service's ``environment`` (created after ``env_file:`` when missing), in the form and
indentation the block already uses.

Every new text is parsed again and compared node by node with the original
(:func:`_verify`): only the planned scalars and entries may differ, or nothing is written.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from kernel.compose.migrate_interp import EnvLine, mentions
from kernel.compose.migrate_plan import OriginKind, Plan
from kernel.compose.migrate_source import ComposeText, Form, ServiceNodes, parse_yaml, services
from kernel.errors import ComposeError, DSOError

_STR = "tag:yaml.org,2002:str"
_TRAILING_BREAKS = re.compile(r"(?:\r?\n[ \t]*)+\Z")
_COMMENT_GAP = re.compile(r"( +)#")


@dataclass(frozen=True, slots=True)
class Edit:
    """Replace ``text[start:end]`` with ``new``."""

    start: int
    end: int
    new: str


@dataclass(frozen=True, slots=True)
class Rewritten:
    """A compose file after migration."""

    source: ComposeText
    text: str = field(repr=False)
    root: yaml.Node | None = field(repr=False)
    #: How many variables of this file now hold a reference.
    changes: int


@dataclass(slots=True)
class _FileEdits:
    edits: dict[tuple[int, int], Edit] = field(default_factory=dict)
    #: Node id → the value the scalar must read back as.
    replaced: dict[int, str] = field(default_factory=dict)
    #: Service mapping id → entries added to its environment, in order.
    added: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    nodes: dict[int, ServiceNodes] = field(default_factory=dict)
    #: For the check: environment node id → entries appended to it; service mapping id →
    #: entries of the environment created in it.
    appended: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    created: dict[int, list[tuple[str, str]]] = field(default_factory=dict)
    changes: int = 0


def rewrite(plan: Plan) -> dict[Path, Rewritten]:
    """The new text of every compose file the plan changes; problems go to ``plan.problems``."""
    per_file: dict[Path, _FileEdits] = {}
    for secret in plan.secrets:
        for use in secret.uses:
            edits = per_file.setdefault(use.file, _FileEdits())
            edits.changes += 1
            if use.item is None:
                edits.added.setdefault(id(use.nodes.node), []).append(
                    (use.variable, secret.reference)
                )
                edits.nodes[id(use.nodes.node)] = use.nodes
                continue
            node = use.item.node
            wanted = secret.reference
            if use.item.form is Form.LIST:
                wanted = f"{use.variable}={secret.reference}"
            edit = _replacement(use.item.file.text, node, wanted)
            other = edits.edits.setdefault((edit.start, edit.end), edit)
            if other != edit:
                plan.problems.append(
                    ComposeError(
                        f"{use.file.name}:{use.item.line}: {use.variable} is shared (a YAML "
                        "anchor) by services that need different secrets",
                        hint="give each service its own entry, or --exclude the variable",
                    )
                )
            edits.replaced[id(node)] = wanted
    result: dict[Path, Rewritten] = {}
    for source in plan.files:
        if source.path not in per_file:
            continue
        edits = per_file[source.path]
        all_edits = list(edits.edits.values())
        for key, entries in edits.added.items():
            nodes = edits.nodes[key]
            added = _addition(nodes, entries, source.text)
            if isinstance(added, DSOError):
                plan.problems.append(added)
                continue
            all_edits.append(added)
            if nodes.env_value is not None:
                edits.appended[id(nodes.env_value)] = entries
            else:
                edits.created[id(nodes.node)] = entries
        text = _apply(source.text, all_edits)
        try:
            root = parse_yaml(text, str(source.path))
        except ComposeError:
            root = None
        if root is None or not _verify(source.root, root, edits):
            plan.problems.append(
                ComposeError(
                    f"{source.path}: the edited file does not read back as planned; "
                    "nothing was written (please report this as a bug)"
                )
            )
            continue
        result[source.path] = Rewritten(source, text, root, edits.changes)
    return result


def _replacement(text: str, node: yaml.ScalarNode, new: str) -> Edit:
    start, end = node.start_mark.index, node.end_mark.index
    if start == end:
        # `VAR:` with nothing after the colon: the empty scalar sits right after it.
        new = " " + new
    elif node.style in ('"', "'"):
        new = f"{node.style}{new}{node.style}"
    trailing = _TRAILING_BREAKS.search(text[start:end])
    if trailing:
        # A block scalar (`|`, `>`) ends after its last line break: keep the breaks.
        return Edit(start, end, new + trailing.group())
    gap = _COMMENT_GAP.match(text, end)
    if gap is None:
        return Edit(start, end, new)
    # Keep a trailing comment in its column (or as far from the value as it was).
    line_start = text.rfind("\n", 0, start) + 1
    comment_column = end - text.rfind("\n", 0, end) - 1 + len(gap.group(1))
    new_end = start - line_start + len(new)
    width = comment_column - new_end if comment_column > new_end else len(gap.group(1))
    return Edit(start, gap.end(1), new + " " * width)


def _addition(nodes: ServiceNodes, entries: list[tuple[str, str]], text: str) -> Edit | DSOError:
    """Append ``entries`` to the service's environment, or create it after ``env_file:``."""
    newline = "\r\n" if "\r\n" in text else "\n"
    env = nodes.env_value
    where = f"{nodes.file.path.name}: service {nodes.name}"
    names = ", ".join(name for name, _ in entries)
    if nodes.env_key is not None and env is not None:
        block = isinstance(env, yaml.MappingNode | yaml.SequenceNode) and not env.flow_style
        if not block or not env.value or env.start_mark.index < nodes.env_key.start_mark.index:
            return ComposeError(
                f"{where}: cannot add {names} to its environment (it is empty, in flow "
                "style {…} / […], or a YAML alias)",
                hint="write the environment as a block, or --exclude the variables",
            )
        if isinstance(env, yaml.MappingNode):
            indent = env.value[0][0].start_mark.column
            lines = [f"{' ' * indent}{name}: {ref}" for name, ref in entries]
        else:
            indent = _dash_column(text, env.value[0].start_mark.index)
            lines = [f"{' ' * indent}- {name}={ref}" for name, ref in entries]
        return _insert_after(text, _content_end(env), lines, newline)
    if nodes.node.flow_style or nodes.env_file_key is None or nodes.env_file_value is None:
        return ComposeError(f"{where}: cannot add {names}: the service is written in flow style")
    column = nodes.env_file_key.start_mark.column
    step = column - nodes.key.start_mark.column
    step = step if step > 0 else 2
    lines = [f"{' ' * column}environment:"]
    lines += [f"{' ' * (column + step)}{name}: {ref}" for name, ref in entries]
    return _insert_after(text, _content_end(nodes.env_file_value), lines, newline)


def _dash_column(text: str, index: int) -> int:
    line_start = text.rfind("\n", 0, index) + 1
    dash = text.rfind("-", line_start, index)
    return dash - line_start if dash >= 0 else index - line_start


def _content_end(node: yaml.Node) -> int:
    """Where the text of ``node`` ends: block collections end at their last scalar (their own
    end mark is the next token, on a later line)."""
    if isinstance(node, yaml.ScalarNode) or getattr(node, "flow_style", False):
        return int(node.end_mark.index)
    children: list[yaml.Node] = []
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            children += [key, value]
    elif isinstance(node, yaml.SequenceNode):
        children = list(node.value)
    return max((_content_end(c) for c in children), default=int(node.end_mark.index))


def _insert_after(text: str, index: int, lines: list[str], newline: str) -> Edit:
    """New lines after the line on which ``index`` falls (or at ``index`` if a line starts)."""
    block = newline.join(lines)
    if index == 0 or text[index - 1] == "\n":
        return Edit(index, index, block + newline)
    end = text.find("\n", index)
    if end < 0:
        return Edit(len(text), len(text), newline + block)
    if text[end - 1] == "\r":
        end -= 1
    return Edit(end, end, newline + block)


def _apply(text: str, edits: list[Edit]) -> str:
    for edit in sorted(edits, key=lambda e: (e.start, e.end), reverse=True):
        text = text[: edit.start] + edit.new + text[edit.end :]
    return text


class _Mismatch(Exception):
    pass


def _verify(old: yaml.Node | None, new: yaml.Node | None, edits: _FileEdits) -> bool:
    """True if ``new`` is ``old`` with exactly the planned changes."""
    try:
        _same(old, new, edits, set())
    except _Mismatch:
        return False
    return True


def _same(old: yaml.Node | None, new: yaml.Node | None, edits: _FileEdits, seen: set[int]) -> None:
    if old is None or new is None:
        if old is not new:
            raise _Mismatch
        return
    if id(old) in seen:
        return
    seen.add(id(old))
    if id(old) in edits.replaced:
        expected = edits.replaced[id(old)]
        if not isinstance(new, yaml.ScalarNode) or (new.tag, new.value) != (_STR, expected):
            raise _Mismatch
        return
    if type(old) is not type(new) or old.tag != new.tag:
        raise _Mismatch
    if isinstance(old, yaml.ScalarNode):
        if old.value != new.value:
            raise _Mismatch
        return
    old_children = list(old.value)
    new_children = list(new.value)
    if id(old) in edits.created:
        found = [i for i, (k, _) in enumerate(new_children) if k.value == "environment"]
        if len(found) != 1 or not isinstance(new_children[found[0]][1], yaml.MappingNode):
            raise _Mismatch
        _key, env = new_children.pop(found[0])
        _check_tail(list(env.value), edits.created[id(old)])
    if id(old) in edits.appended:
        _check_tail(new_children[len(old_children) :], edits.appended[id(old)])
        new_children = new_children[: len(old_children)]
    if len(old_children) != len(new_children):
        raise _Mismatch
    for a, b in zip(old_children, new_children, strict=True):
        if isinstance(a, tuple):
            _same(a[0], b[0], edits, seen)
            _same(a[1], b[1], edits, seen)
        else:
            _same(a, b, edits, seen)


def _check_tail(tail: list[object], entries: list[tuple[str, str]]) -> None:
    """The entries added at the end of an environment are exactly ``entries``."""
    if len(tail) != len(entries):
        raise _Mismatch
    for got, (name, ref) in zip(tail, entries, strict=True):
        if isinstance(got, tuple):
            ok = (got[0].value, got[1].value, got[1].tag) == (name, ref, _STR)
        else:
            ok = isinstance(got, yaml.ScalarNode) and got.value == f"{name}={ref}"
        if not ok:
            raise _Mismatch


def unused_lines(plan: Plan, rewritten: Mapping[Path, Rewritten]) -> list[tuple[EnvLine, str]]:
    """Dotenv lines that gave a migrated value and that nothing reads any more.

    A line is still read when a compose file (as rewritten) interpolates its variable or passes
    it through (``- VAR``), for the project's ``.env``; or when a service loads its file with
    ``env_file:`` and does not override the variable in ``environment``. Earlier assignments of
    the same variable (overridden, so already dead) are listed too: they may hold old values.
    """
    mentioned: set[str] = set()
    env_of: dict[str, set[str]] = {}
    loads: dict[Path, set[str]] = {}
    for source in plan.files:
        new = rewritten.get(source.path)
        text = ComposeText(source.path, new.text, new.root) if new else source
        _scalars(text.root, mentioned, set())
        for svc in services(text, plan.working_dir):
            env_of.setdefault(svc.name, set()).update(i.variable for i in svc.items)
            mentioned.update(i.variable for i in svc.items if i.raw is None)
            for ref in svc.env_files:
                loads.setdefault(ref.path, set()).add(svc.name)
    # A dotenv value that interpolates others keeps them in use (compose reads the project's
    # .env for env_file values too).
    pending = [v for v in plan.dotenv_vars.values() if v.name in mentioned]
    pending += [v for d in plan.env_files.values() for v in d.variables.values()]
    while pending:
        for name in pending.pop().mentions - mentioned:
            mentioned.add(name)
            if name in plan.dotenv_vars:
                pending.append(plan.dotenv_vars[name])
    result: dict[EnvLine, str] = {}
    for secret in plan.secrets:
        for origin in secret.origins:
            if origin.kind is OriginKind.COMPOSE:
                continue
            name, path = origin.variable, origin.file
            if path in plan.dotenv and name in mentioned:
                continue
            if any(name not in env_of.get(s, set()) for s in loads.get(path, set())):
                continue
            found = plan.env_files.get(path)
            var = found.variables.get(name) if found else plan.dotenv_vars.get(name)
            for line in var.lines if var is not None else (EnvLine(path, origin.line),):
                result.setdefault(line, name)
    return sorted(result.items(), key=lambda item: (str(item[0].file), item[0].line))


def _scalars(node: yaml.Node | None, names: set[str], seen: set[int]) -> None:
    """Collect the variables every string scalar under ``node`` interpolates."""
    if node is None or id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.ScalarNode):
        if node.tag == _STR:
            names.update(mentions(str(node.value)))
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            _scalars(key, names, seen)
            _scalars(value, names, seen)
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            _scalars(item, names, seen)
