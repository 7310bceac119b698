"""Compose interpolation as migrate evaluates it: literal values from files, or a reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from kernel.compose.migrate_interp import (
    DotenvVar,
    EnvLine,
    Evaluated,
    NotLiteral,
    evaluate,
    mentions,
)
from kernel.secret_value import SecretValue

ENV = Path("/p/.env")


def var(name: str, value: str, line: int = 1, not_literal: str | None = None) -> DotenvVar:
    return DotenvVar(name, SecretValue(value), (EnvLine(ENV, line),), not_literal)


DOTENV = {
    "PW": var("PW", "hunter2", 3),
    "EMPTY": var("EMPTY", "", 4),
    "HOST": var("HOST", "db", 5),
    "BUILT": var("BUILT", "${PW}x", 6, ".env:6: the value of BUILT interpolates another variable"),
}


@pytest.mark.parametrize(
    ("text", "value", "used", "compose_text"),
    [
        ("plain", "plain", [], True),
        ("${PW}", "hunter2", ["PW"], False),
        ("$PW", "hunter2", ["PW"], False),
        ("a$$b", "a$b", [], True),
        ("$${PW}", "${PW}", [], True),
        ("pg://u:${PW}@${HOST}/x", "pg://u:hunter2@db/x", ["PW", "HOST"], True),
        ("${PW:-dflt}", "hunter2", ["PW"], False),
        ("${UNSET:-dflt}", "dflt", [], True),
        ("${UNSET-dflt}", "dflt", [], True),
        ("${EMPTY:-dflt}", "dflt", [], True),
        ("${EMPTY-dflt}", "", ["EMPTY"], False),
        ("${PW:+alt}", "alt", [], True),
        ("${UNSET:+alt}", "", [], False),
        ("${EMPTY+alt}", "alt", [], True),
        ("${PW:?needed}", "hunter2", ["PW"], False),
        ("${EMPTY?needed}", "", ["EMPTY"], False),
        ("${UNSET:-}", "", [], False),
    ],
)
def test_literal_values(text: str, value: str, used: list[str], compose_text: bool) -> None:
    result = evaluate(text, {}, DOTENV)
    assert isinstance(result, Evaluated)
    assert result.value.reveal_text() == value
    assert [d.name for d in result.dotenv] == used
    assert result.uses_compose_text is compose_text


@pytest.mark.parametrize(
    ("text", "shell", "reason"),
    [
        ("${PW}", {"PW": "x"}, "${PW} comes from the shell environment, not a file"),
        ("${UNSET}", {}, "${UNSET} is not set in any .env file"),
        ("$UNSET", {}, "${UNSET} is not set in any .env file"),
        ("${UNSET:?needed}", {}, "${UNSET} is required but not set"),
        ("${EMPTY:?needed}", {}, "${EMPTY} is required but not set"),
        ("${UNSET:-${PW}}", {}, "a nested interpolation in the default of ${UNSET}"),
        ("${BUILT}", {}, ".env:6: the value of BUILT interpolates another variable"),
        ("${PW", {}, "an interpolation compose would reject"),
        ("${1X}", {}, "an interpolation compose would reject"),
        ("cost: $5", {}, "an interpolation compose would reject"),
    ],
)
def test_values_that_are_not_literals(text: str, shell: dict[str, str], reason: str) -> None:
    assert evaluate(text, shell, DOTENV) == NotLiteral(reason)


def test_mentions_ignores_escaped_dollars() -> None:
    assert mentions("a ${A:-${B}} $C $$D ${E}") == {"A", "B", "C", "E"}
