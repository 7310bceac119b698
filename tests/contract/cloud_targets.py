"""Conformance targets backed by real servers: the vault provider against OpenBao (KV v2 and
KV v1) and the aws provider against moto, with secrets seeded for one run.

Used by test_conformance_cloud.py (with the session's servers) and, through
:func:`server_target`, by anything that needs a server of its own for one suite run (for
example the frozen-binary e2e tests, with their own command).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from kernel.conformance import ExpectedSecret, Fixture
from kernel.provider_host import ProviderCommand
from tests.integration.servers import MotoServer, OpenBao, provider_command, unique

#: Target ids: the provider, and for vault the KV version of the mount.
TARGETS = ("vault-kv2", "vault-kv1", "aws")


def vault_fixture(bao: OpenBao, kv_version: int) -> Fixture:
    mount = "secret" if kv_version == 2 else OpenBao.KV1
    prefix = unique("conformance")
    plain = secrets.token_urlsafe(24)
    password = secrets.token_urlsafe(18)
    large = secrets.token_hex(300 * 1024)  # 600 KiB of text in one field
    bao.write(f"{prefix}/plain", {"value": plain}, mount=mount)
    bao.write(f"{prefix}/json", {"user": "app", "password": password, "port": 5432}, mount=mount)
    bao.write(f"{prefix}/large", {"blob": large}, mount=mount)
    settings = {"address": bao.address, "token": bao.root_token, "mount": mount}
    if kv_version == 1:
        settings["kv_version"] = 1
    return Fixture(
        settings=settings,
        secrets=(
            ExpectedSecret(
                f"{prefix}/plain",
                value=json.dumps({"value": plain}, separators=(",", ":")).encode(),
            ),
            ExpectedSecret(f"{prefix}/plain", "value", plain.encode()),
            ExpectedSecret(f"{prefix}/json", "password", password.encode()),
            ExpectedSecret(f"{prefix}/json", "port", b"5432"),
            ExpectedSecret(f"{prefix}/large", "blob", large.encode()),
        ),
        missing=f"{prefix}/missing",
    )


def aws_fixture(server: MotoServer) -> Fixture:
    prefix = unique("conformance")
    plain = secrets.token_urlsafe(24)
    password = secrets.token_urlsafe(18)
    binary = secrets.token_bytes(64)
    sm = server.client()
    sm.create_secret(Name=f"{prefix}/plain", SecretString=plain)
    document = {"password": password, "port": 5432, "tls": True}
    sm.create_secret(Name=f"{prefix}/json", SecretString=json.dumps(document))
    sm.create_secret(Name=f"{prefix}/binary", SecretBinary=binary)
    return Fixture(
        settings={
            "region": MotoServer.REGION,
            "endpoint_url": server.endpoint,
            "access_key_id": "testing",
            "secret_access_key": "testing",
        },
        secrets=(
            ExpectedSecret(f"{prefix}/plain", value=plain.encode()),
            ExpectedSecret(f"{prefix}/json", "password", password.encode()),
            ExpectedSecret(f"{prefix}/json", "port", b"5432"),
            ExpectedSecret(f"{prefix}/json", "tls", b"true"),
            ExpectedSecret(f"{prefix}/binary", value=binary),
        ),
        missing=f"{prefix}/missing",
    )


@contextmanager
def server_target(target: str, directory: Path) -> Iterator[tuple[ProviderCommand, Fixture]]:
    """Start the server of ``target`` (one of :data:`TARGETS`), seed it, and yield the
    provider's source command and the fixture; the server is stopped afterwards. Run the suite
    with ``environ=tests.integration.servers.clean_env()``."""
    if target not in TARGETS:
        raise ValueError(f"unknown target {target!r}; expected one of {TARGETS}")
    if target.startswith("vault"):
        bao = OpenBao(directory / "openbao")
        try:
            yield provider_command("vault"), vault_fixture(bao, 2 if target == "vault-kv2" else 1)
        finally:
            bao.stop()
    else:
        moto = MotoServer(directory / "moto")
        try:
            yield provider_command("aws"), aws_fixture(moto)
        finally:
            moto.stop()
