"""YAML with line numbers: syntax errors, duplicates, tags, and YAML 1.1 surprises."""

from __future__ import annotations

import pytest

from kernel.config.yaml_source import MapNode, Scalar, SeqNode, parse_document
from kernel.errors import ConfigError

PATH = "/cfg/dso.yaml"


def test_keys_and_values_keep_their_lines() -> None:
    doc = parse_document("version: 1\nagent:\n  cache:\n    ttl: 1h\n  env: [A, B]\n", PATH)
    agent = doc.root.get("agent")
    assert agent is not None and agent.line == 2
    assert isinstance(agent.value, MapNode)
    cache = agent.value.get("cache")
    assert cache is not None and isinstance(cache.value, MapNode)
    ttl = cache.value.get("ttl")
    assert ttl is not None and ttl.line == 4
    assert ttl.value == Scalar("1h", "1h", 4, 10)
    env = agent.value.get("env")
    assert env is not None and isinstance(env.value, SeqNode)
    assert [item.line for item in env.value.items] == [5, 5]


@pytest.mark.parametrize(
    ("text", "location", "problem"),
    [
        ("version: 1\nagent: [\n", ":3:1: ", "expected"),
        ("version: 1\n  bad: indent\n", ":2:6: ", "mapping values are not allowed here"),
        ("version: 1\nagent:\n\tcache: 1\n", ":3:1: ", "cannot start any token"),
        ('version: "1\n', ":2:1: ", "found unexpected end of stream"),
    ],
)
def test_syntax_errors_carry_file_line_column_and_the_problem(
    text: str, location: str, problem: str
) -> None:
    with pytest.raises(ConfigError) as info:
        parse_document(text, PATH)
    message = str(info.value)
    assert message.startswith(PATH + location), message
    assert problem in message
    assert info.value.path == PATH
    assert info.value.line == int(location.split(":")[1])


@pytest.mark.parametrize("text", ["", "\n", "# only a comment\n", "---\n"])
def test_empty_file_is_an_error(text: str) -> None:
    with pytest.raises(ConfigError, match="empty configuration"):
        parse_document(text, PATH)


@pytest.mark.parametrize(("text", "got"), [("- a\n- b\n", "a list"), ("hello\n", "'hello'")])
def test_top_level_must_be_a_mapping(text: str, got: str) -> None:
    with pytest.raises(ConfigError, match=f"top level must be a mapping.*got {got}"):
        parse_document(text, PATH)


def test_several_documents_are_refused() -> None:
    with pytest.raises(ConfigError, match="single document"):
        parse_document("version: 1\n---\nversion: 1\n", PATH)


def test_duplicate_keys_name_both_lines() -> None:
    doc = parse_document("version: 1\nagent:\n  socket: /a\n  socket: /b\nversion: 1\n", PATH)
    messages = [str(p) for p in doc.problems]
    assert messages == [
        f"{PATH}:4: agent.socket: duplicate key 'socket' (lines 3 and 4); keep one",
        f"{PATH}:5: version: duplicate key 'version' (lines 1 and 5); keep one",
    ]
    # The first occurrence is kept.
    agent = doc.root.get("agent")
    assert agent is not None and isinstance(agent.value, MapNode)
    socket = agent.value.get("socket")
    assert socket is not None and isinstance(socket.value, Scalar)
    assert socket.value.value == "/a"


@pytest.mark.parametrize(
    "text",
    [
        "version: !!python/object:os.system 1\n",
        "version: !custom 1\n",
        "version: !!binary aGVsbG8=\n",
        "agent: !!set {a, b}\n",
        "agent: !!omap [a: 1]\n",
    ],
)
def test_only_safe_tags(text: str) -> None:
    with pytest.raises(ConfigError, match="unsupported YAML tag"):
        parse_document(text, PATH)


def test_merge_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match=r"merge keys \(<<\)"):
        parse_document("base: &b {x: 1}\nagent:\n  <<: *b\n", PATH)


def test_alias_bombs_are_stopped() -> None:
    lines = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i, name in enumerate("bcdefg"):
        prev = "abcdefg"[i]
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 10)}]")
    with pytest.raises(ConfigError, match="more than"):
        parse_document("\n".join(lines) + "\n", PATH)


@pytest.mark.parametrize(
    ("raw", "value"),
    [
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("yes", "yes"),
        ("no", "no"),
        ("on", "on"),
        ("off", "off"),
        ("1:30", "1:30"),
        ("2024-01-01", "2024-01-01"),
        ("5", 5),
        ("1.5", 1.5),
        ('"5"', "5"),
        ("'true'", "true"),
        ("~", None),
        ("", None),
        ("null", None),
    ],
)
def test_scalar_typing_avoids_yaml_1_1_surprises(raw: str, value: object) -> None:
    doc = parse_document(f"key: {raw}\n", PATH)
    entry = doc.root.get("key")
    assert entry is not None and isinstance(entry.value, Scalar)
    assert entry.value.value == value
    assert type(entry.value.value) is type(value)


def test_keys_are_their_source_text() -> None:
    doc = parse_document("on: 1\n5: 2\n", PATH)
    assert [e.key for e in doc.root.entries] == ["on", "5"]


def test_complex_keys_are_refused() -> None:
    with pytest.raises(ConfigError, match="plain words"):
        parse_document("? [a, b]\n: 1\n", PATH)
