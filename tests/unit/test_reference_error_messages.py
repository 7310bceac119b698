"""How a provider's answer about one reference reads: the reference first, then the provider,
then the provider's words, whatever the code; and one hint, never two."""

from __future__ import annotations

import hvac.exceptions as hvac_exc
import pytest

from kernel.errors import ProviderError, SecretNotFoundError
from kernel.protocol import ErrorCode, exception_for
from kernel.protocol.codes import split_hint
from providers.local.errors import fault_for_error
from providers.vault.errors import fault_for

REF = "dso://vault:app/db#password"


@pytest.mark.parametrize(
    ("exc", "code", "cause"),
    [
        (hvac_exc.InvalidPath("body"), ErrorCode.NOT_FOUND, "no such secret, version or mount"),
        (hvac_exc.Forbidden("body"), ErrorCode.ACCESS_DENIED, "permission denied"),
    ],
    ids=["404", "403"],
)
def test_vault_404_and_403_read_in_the_same_order(
    exc: Exception, code: ErrorCode, cause: str
) -> None:
    fault = fault_for(exc, "'secret/app/db'")
    assert fault is not None and fault.code is code

    error = exception_for(fault.code, fault.message, provider="vault", reference=REF)

    assert error.message.startswith(f"{REF}: provider 'vault': 'secret/app/db': {cause} (HTTP ")
    if isinstance(error, ProviderError):  # 403: still a provider error, with its wire code
        assert error.provider == "vault" and error.code == "access_denied"


@pytest.mark.parametrize("code", list(ErrorCode), ids=str)
def test_every_code_leads_with_the_reference(code: ErrorCode) -> None:
    error = exception_for(code, "boom", provider="aws", reference="dso://aws:x")
    assert error.message == "dso://aws:x: provider 'aws': boom"
    assert str(error).count("aws") == 2  # the reference's provider prefix, and who answered


def test_a_providers_own_hint_is_the_only_hint() -> None:
    # The local provider sends its hint inside the message (the wire has no hint field).
    fault = fault_for_error(
        SecretNotFoundError(
            "no secret named 'nope' in the local vault",
            hint="`docker dso secret list` shows what exists",
        )
    )
    error = exception_for(fault.code, fault.message, provider="local", reference="dso://nope")

    assert str(error) == (
        "dso://nope: provider 'local': no secret named 'nope' in the local vault\n"
        "  hint: `docker dso secret list` shows what exists"
    )
    assert str(error).count("hint") == 1


def test_without_its_own_hint_the_code_gives_one() -> None:
    error = exception_for("not_found", "no such key", provider="aws", reference="dso://aws:x")
    assert error.hint == "check the reference's path, field and version in the provider"
    assert str(error).count("hint") == 1


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("gone (hint: look (here) first)", ("gone", "look (here) first")),
        ("gone (hint: x) and more", ("gone (hint: x) and more", None)),
        ("(hint: only)", ("(hint: only)", None)),
        ("plain", ("plain", None)),
    ],
)
def test_split_hint(message: str, expected: tuple[str, str | None]) -> None:
    assert split_hint(message) == expected
