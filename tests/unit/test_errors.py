"""The error tree: exit codes, messages, and docs/errors.md that cannot drift."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from kernel import errors
from kernel.errors import ConfigError, DSOError, ExitCode, ProviderError

DOC = (Path(__file__).resolve().parents[2] / "docs" / "errors.md").read_text()


def all_error_classes() -> list[type[DSOError]]:
    return [
        obj
        for _, obj in inspect.getmembers(errors, inspect.isclass)
        if issubclass(obj, DSOError) and obj.__module__ == errors.__name__
    ]


@pytest.mark.parametrize("code", list(ExitCode), ids=lambda c: c.name)
def test_every_exit_code_is_documented(code: ExitCode) -> None:
    assert f"| {int(code)} | `{code.name}` |" in DOC


@pytest.mark.parametrize("cls", all_error_classes(), ids=lambda c: c.__name__)
def test_every_error_class_is_documented_with_its_exit_code(cls: type[DSOError]) -> None:
    assert f"| `{cls.__name__}` | {int(cls.exit_code)} |" in DOC
    assert cls.__name__ in (errors.__doc__ or ""), "draw it in the errors.py docstring tree"
    assert cls.__doc__, "say when it is raised"


def test_config_error_names_file_line_and_key() -> None:
    exc = ConfigError("unknown key", path="/etc/dso/dso.yaml", line=7, key="agent.foo")
    assert str(exc) == "/etc/dso/dso.yaml:7: agent.foo: unknown key"
    assert exc.reason == "unknown key"
    assert exc.exit_code == ExitCode.CONFIG


def test_hint_is_printed_after_the_message() -> None:
    exc = errors.VaultNotFoundError("no vault at /x", hint="run `docker dso init`")
    assert str(exc) == "no vault at /x\n  hint: run `docker dso init`"


def test_provider_error_names_the_provider_and_keeps_the_wire_code() -> None:
    exc = ProviderError("connection refused", provider="vault", code="unavailable")
    assert str(exc) == "provider 'vault': connection refused"
    assert exc.code == "unavailable"
    assert exc.exit_code == ExitCode.PROVIDER
