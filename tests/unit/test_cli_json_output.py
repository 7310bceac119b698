"""``json_text`` writes what ``json.dumps(doc, indent=2, default=str)`` writes, errors included."""

from __future__ import annotations

import json
from enum import IntEnum
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kernel.cli.json_output import json_text


def reference(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=False, default=str)


class Level(IntEnum):
    LOW = 1


class Named:
    def __str__(self) -> str:
        return 'named "object"\n'


scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(),
    st.sampled_from([Level.LOW, Path("/run/dso/agent.sock"), Named(), b"bytes", 3 + 4j]),
)
keys = st.one_of(st.text(), st.integers(), st.floats(), st.booleans(), st.none())
documents = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.lists(children, max_size=3).map(tuple),
        st.dictionaries(keys, children, max_size=5),
    ),
    max_leaves=40,
)


@given(documents)
def test_the_same_text_as_json_dumps(doc: Any) -> None:
    assert json_text(doc) == reference(doc)


def test_a_status_like_document() -> None:
    doc = {
        "schema": 1,
        "containers": [{"name": "app-web-1", "references": {}, "ports": []} for _ in range(3)],
        "observability": {"traces": [], "latency": {"get": {"p95_ms": 1.25, "count": 7}}},
        "reason": None,
        "live": True,
    }
    assert json_text(doc) == reference(doc)


def test_the_same_errors_as_json_dumps() -> None:
    loop: list[Any] = []
    loop.append(loop)
    cases: list[Any] = [loop, {"k": {("a", "b"): 1}}]
    for doc in cases:
        with pytest.raises((ValueError, TypeError)) as expected:
            reference(doc)
        with pytest.raises(type(expected.value)) as raised:
            json_text(doc)
        assert str(raised.value) == str(expected.value)
