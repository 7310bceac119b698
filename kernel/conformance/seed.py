"""A throwaway local vault with known secrets: the fixture for the ``local`` provider.

Used by ``docker dso providers test local`` without ``--fixture`` and by the contract tests.
Values are fresh random bytes on every call, so nothing real is ever exposed by a test run.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import TYPE_CHECKING

from kernel.conformance.fixture import ExpectedSecret, Fixture
from kernel.secret_value import SecretValue
from kernel.vault import MAX_VALUE_SIZE, KeySource, Vault, create_key_file

if TYPE_CHECKING:
    from kernel.provider_host import ProviderClient

PLAIN = "conformance/plain"
JSON_DOC = "conformance/json"
LARGE = "conformance/large"
MISSING = "conformance/missing"


def seed_local_vault(directory: Path) -> Fixture:
    """Create ``vault.key`` and ``vault.enc`` in ``directory`` (which must exist, empty) with a
    plain secret, a JSON secret read by field, and a 1 MiB secret (the vault's maximum)."""
    key_file = directory / "vault.key"
    path = directory / "vault.enc"
    create_key_file(key_file)
    keys = KeySource(key_file)
    vault = Vault.create(path, keys)
    plain = secrets.token_urlsafe(24).encode()
    password = secrets.token_urlsafe(18)
    large = secrets.token_bytes(MAX_VALUE_SIZE)
    doc = json.dumps({"user": "conformance", "password": password, "port": 5432}).encode()
    vault.set_many(
        {PLAIN: SecretValue(plain), JSON_DOC: SecretValue(doc), LARGE: SecretValue(large)}
    )

    def mutate(client: ProviderClient) -> None:
        Vault.open(path, keys).set(PLAIN, SecretValue(secrets.token_urlsafe(24)))

    return Fixture(
        settings={"path": str(path), "key_file": str(key_file)},
        secrets=(
            ExpectedSecret(PLAIN, value=plain),
            ExpectedSecret(JSON_DOC, "password", password.encode()),
            ExpectedSecret(JSON_DOC, "port", b"5432"),
            ExpectedSecret(LARGE, value=large),
        ),
        missing=MISSING,
        mutate=mutate,
        change_path=PLAIN,
        change_timeout=5.0,
    )
