from __future__ import annotations

import logging
import pickle

import pytest

from kernel.secret_value import MASK, SecretValue


def test_every_rendering_is_masked(canary: str, caplog: pytest.LogCaptureFixture) -> None:
    value = SecretValue(canary)
    rendered = [
        repr(value),
        str(value),
        f"{value}",
        f"{value!r}",
        "%s" % value,  # noqa: UP031
        f"{[value]}",
        f"{ {'k': value} }",
    ]
    with caplog.at_level(logging.DEBUG):
        logging.getLogger("dso.test").error("value is %s / %r", value, value)
    for text in [*rendered, caplog.text]:
        assert canary not in text
        assert MASK in text


def test_reveal_returns_the_bytes(canary: str) -> None:
    assert SecretValue(canary).reveal() == canary.encode()
    assert SecretValue(canary.encode()).reveal_text() == canary
    assert len(SecretValue(b"abc")) == 3
    assert not SecretValue(b"")


def test_equality_is_by_value_and_unhashable() -> None:
    assert SecretValue("a") == SecretValue(b"a")
    assert SecretValue("a") != SecretValue("b")
    with pytest.raises(TypeError):
        hash(SecretValue("a"))


def test_cannot_be_pickled(canary: str) -> None:
    with pytest.raises(TypeError):
        pickle.dumps(SecretValue(canary))


def test_rejects_other_types() -> None:
    with pytest.raises(TypeError):
        SecretValue(123)  # type: ignore[arg-type]
