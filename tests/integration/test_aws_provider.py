"""The aws provider as a real process (``python -m providers.aws``) behind the real host client,
against a real moto server: create, update, JSON fields, binary, version pinning, ARNs, missing
and deleted secrets, assume-role, and — on a moto server that enforces IAM — bad credentials
and denied actions.

moto cannot simulate throttling (no API returns ThrottlingException), so the throttling →
``unavailable`` mapping is covered by tests/unit/test_aws_provider_errors.py only. moto does not
scope Secrets Manager permissions by resource ARN (it authorizes every call against ``*``), so
the IAM policies below allow ``Resource: "*"``; docs/providers/aws.md shows the scoped policy.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kernel.errors import DSOError, ProviderError
from kernel.protocol import ErrorCode, SecretRef, wire_code
from providers.aws import AwsProvider
from tests.integration.servers import (
    MotoServer,
    error_code,
    one,
    provider_logs,
    start_provider,
    unique,
)

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_ca_bundles")]

READ_ACTIONS = [
    "secretsmanager:GetSecretValue",
    "secretsmanager:DescribeSecret",
    "secretsmanager:ListSecrets",
]


def settings_for(server: MotoServer, **extra: Any) -> dict[str, Any]:
    return {
        "region": MotoServer.REGION,
        "endpoint_url": server.endpoint,
        "access_key_id": "testing",
        "secret_access_key": "testing",
        **extra,
    }


def start(clients: list[Any], settings: dict[str, Any]) -> Any:
    client = start_provider("aws", settings)
    clients.append(client)
    return client


# -- values and versions ------------------------------------------------------------------------


def test_create_update_versions_and_pinning(moto: MotoServer, provider_clients: list[Any]) -> None:
    sm = moto.client()
    name = f"{unique('prod')}/db"
    created = sm.create_secret(Name=name, SecretString="first")
    client = start(provider_clients, settings_for(moto))
    assert one(client, SecretRef("a", name)) == (b"first", created["VersionId"])
    assert client.versions([SecretRef("a", name)]).versions == {"a": created["VersionId"]}

    updated = sm.put_secret_value(SecretId=name, SecretString="second")
    assert updated["VersionId"] != created["VersionId"]
    assert client.versions([SecretRef("a", name)]).versions == {"a": updated["VersionId"]}
    assert one(client, SecretRef("a", name)) == (b"second", updated["VersionId"])
    previous = SecretRef("p", name, version="AWSPREVIOUS")
    assert one(client, previous) == (b"first", created["VersionId"])
    assert client.versions([previous]).versions == {"p": created["VersionId"]}
    by_id = SecretRef("i", name, version=created["VersionId"])
    assert one(client, by_id) == (b"first", created["VersionId"])
    assert client.versions([by_id]).versions == {"i": created["VersionId"]}

    assert error_code(client, SecretRef("x", name, version="AWSPENDING")) is ErrorCode.NOT_FOUND
    pending = SecretRef("x", name, version="AWSPENDING")
    assert error_code(client, pending, "versions") is ErrorCode.NOT_FOUND
    unknown = SecretRef("x", name, version="00000000-0000-4000-8000-000000000000")
    assert error_code(client, unknown) is ErrorCode.NOT_FOUND
    assert error_code(client, unknown, "versions") is ErrorCode.NOT_FOUND


def test_json_fields_keep_their_types(moto: MotoServer, provider_clients: list[Any]) -> None:
    name = unique("json")
    document = {
        "password": "s3cr3t",
        "port": 5432,
        "ratio": 0.25,
        "enabled": False,
        "nothing": None,
        "db": {"hosts": ["a", "b"], "tls": {"verify": True}},
    }
    moto.client().create_secret(Name=name, SecretString=json.dumps(document))
    client = start(provider_clients, settings_for(moto))
    fields = {
        "password": b"s3cr3t",
        "port": b"5432",
        "ratio": b"0.25",
        "enabled": b"false",
        "nothing": b"null",
        "db": b'{"hosts":["a","b"],"tls":{"verify":true}}',
        "db.hosts": b'["a","b"]',
        "db.hosts.1": b"b",
        "db.tls.verify": b"true",
    }
    refs = [SecretRef(f"f{i}", name, field=f) for i, f in enumerate(fields)]
    result = client.get(refs)
    assert not result.errors
    assert [result.values[r.id].value for r in refs] == list(fields.values())
    whole = one(client, SecretRef("w", name))[0]
    assert json.loads(whole) == document
    assert error_code(client, SecretRef("x", name, field="db.port")) is ErrorCode.NOT_FOUND


def test_plain_text_has_no_fields_and_binary_is_delivered_as_bytes(
    moto: MotoServer, provider_clients: list[Any]
) -> None:
    sm = moto.client()
    text, blob = unique("text"), unique("bin")
    sm.create_secret(Name=text, SecretString="not json")
    payload = bytes(range(256))
    created = sm.create_secret(Name=blob, SecretBinary=payload)
    client = start(provider_clients, settings_for(moto))
    assert error_code(client, SecretRef("t", text, field="x")) is ErrorCode.NOT_FOUND
    assert one(client, SecretRef("b", blob)) == (payload, created["VersionId"])


def test_arn_addressing_and_missing_and_deleted_secrets(
    moto: MotoServer, provider_clients: list[Any]
) -> None:
    sm = moto.client()
    name, gone = unique("arn"), unique("gone")
    arn = sm.create_secret(Name=name, SecretString='{"k": "v"}')["ARN"]
    sm.create_secret(Name=gone, SecretString="x")
    sm.delete_secret(SecretId=gone, RecoveryWindowInDays=7)
    client = start(provider_clients, settings_for(moto))
    assert one(client, SecretRef("a", arn, field="k"))[0] == b"v"
    assert client.versions([SecretRef("a", arn)]).errors == {}
    for path in (unique("missing"), gone):
        assert error_code(client, SecretRef("m", path)) is ErrorCode.NOT_FOUND
        assert error_code(client, SecretRef("m", path), "versions") is ErrorCode.NOT_FOUND


def test_list_names(moto: MotoServer, provider_clients: list[Any]) -> None:
    top = unique("list")
    for leaf in ("a", "b"):
        moto.client().create_secret(Name=f"{top}/{leaf}", SecretString="v")
    client = start(provider_clients, settings_for(moto))
    assert client.list_names(f"{top}/") == [f"{top}/a", f"{top}/b"]
    assert f"{top}/a" in client.list_names()


def test_large_batches_use_one_list_secrets_call(moto: MotoServer) -> None:
    """In-process against the real server, counting the AWS operations the provider makes."""
    sm = moto.client()
    names = [f"{unique('batch')}" for _ in range(12)]
    for name in names:
        sm.create_secret(Name=name, SecretString="v")
    expected = {name: sm.describe_secret(SecretId=name)["VersionIdsToStages"] for name in names[:1]}
    provider = AwsProvider(environ={})
    provider.configure(settings_for(moto, list_secrets_threshold=10))
    calls: Counter[str] = Counter()
    provider._client.meta.events.register(
        "before-call.secretsmanager", lambda model, **_: calls.update([model.name])
    )
    try:
        refs = [SecretRef(f"r{i}", name) for i, name in enumerate(names)]
        many = provider.versions(refs)
        assert not many.errors
        assert calls == Counter({"ListSecrets": 1})
        (current,) = [v for v, s in expected[names[0]].items() if "AWSCURRENT" in s]
        assert many.versions["r0"] == current
        calls.clear()
        few = provider.versions([*refs[:3], SecretRef("again", names[0])])
        assert calls == Counter({"DescribeSecret": 3})
        assert few.versions["r0"] == few.versions["again"] == current
        calls.clear()
        provider.get([SecretRef("a", names[0]), SecretRef("b", names[0])])
        assert calls == Counter({"GetSecretValue": 1}), "one call per distinct secret"
    finally:
        provider.close()


# -- credentials --------------------------------------------------------------------------------


def test_assume_role(moto: MotoServer, provider_clients: list[Any]) -> None:
    name = unique("role")
    moto.client().create_secret(Name=name, SecretString="via-role")
    settings = settings_for(
        moto,
        role_arn="arn:aws:iam::123456789012:role/dso-reader",
        external_id="ext-123456",
        session_name="dso-test",
        sts_endpoint_url=moto.endpoint,
    )
    client = start(provider_clients, settings)
    assert one(client, SecretRef("a", name))[0] == b"via-role"


def test_unreachable_endpoint_is_unavailable(provider_clients: list[Any]) -> None:
    settings = {
        "region": "us-east-1",
        "endpoint_url": "http://127.0.0.1:9",
        "access_key_id": "a",
        "secret_access_key": "b",
        "max_attempts": 1,
    }
    with pytest.raises(DSOError) as info:
        start(provider_clients, settings)
    assert wire_code(info.value) is ErrorCode.UNAVAILABLE


@pytest.fixture(scope="module")
def iam_moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MotoServer, str, str]]:
    """A moto server that checks signatures and IAM policies, with an admin user's keys."""
    server = MotoServer(tmp_path_factory.mktemp("moto-iam"), enforce_iam=True)
    try:
        key, secret = server.bootstrap_admin()
        yield server, key, secret
    finally:
        server.stop()


def iam_user(server: MotoServer, admin: tuple[str, str], actions: list[str]) -> dict[str, str]:
    iam = server.client("iam", access_key=admin[0], secret_key=admin[1])
    user = unique("user")
    iam.create_user(UserName=user)
    key = iam.create_access_key(UserName=user)["AccessKey"]
    policy = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Action": actions, "Resource": "*"}],
    }
    iam.put_user_policy(UserName=user, PolicyName="dso", PolicyDocument=json.dumps(policy))
    return {"access_key_id": key["AccessKeyId"], "secret_access_key": key["SecretAccessKey"]}


def test_iam_reader_denied_action_and_bad_keys(
    iam_moto: tuple[MotoServer, str, str],
    provider_clients: list[Any],
    caplog: pytest.LogCaptureFixture,
    canary: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    server, *admin = iam_moto
    admin_keys = (admin[0], admin[1])
    name = unique("iam")
    sm = server.client(access_key=admin[0], secret_key=admin[1])
    sm.create_secret(Name=name, SecretString=json.dumps({"password": canary}))
    base = {"region": MotoServer.REGION, "endpoint_url": server.endpoint}

    reader = start(provider_clients, {**base, **iam_user(server, admin_keys, READ_ACTIONS)})
    assert one(reader, SecretRef("a", name, field="password"))[0] == canary.encode()
    assert not reader.versions([SecretRef("a", name)]).errors

    lister = start(provider_clients, {**base, **iam_user(server, admin_keys, READ_ACTIONS[2:])})
    assert error_code(lister, SecretRef("a", name)) is ErrorCode.ACCESS_DENIED
    assert error_code(lister, SecretRef("a", name), "versions") is ErrorCode.ACCESS_DENIED

    # Without ListSecrets, configure still succeeds and versions fall back to DescribeSecret.
    no_list = start(provider_clients, {**base, **iam_user(server, admin_keys, READ_ACTIONS[:2])})
    assert not no_list.versions([SecretRef("a", name)]).errors

    good = iam_user(server, admin_keys, READ_ACTIONS)
    bad_keys = [
        {"access_key_id": "AKIAXXXXXXXXXXXXXXXX", "secret_access_key": "whatever"},
        {**good, "secret_access_key": "wrong-" + canary},
    ]
    for keys in bad_keys:
        with pytest.raises(ProviderError) as info:
            start(provider_clients, {**base, **keys})
        assert info.value.code == ErrorCode.AUTH_FAILED.value, info.value.message
    for client in provider_clients:
        client.close(grace=2.0)
    assert canary not in provider_logs(caplog)


def test_values_never_reach_the_logs(
    moto: MotoServer, provider_clients: list[Any], caplog: pytest.LogCaptureFixture, canary: str
) -> None:
    caplog.set_level(logging.DEBUG)
    name = unique("canary")
    moto.client().create_secret(Name=name, SecretString=json.dumps({"k": canary}))
    client = start(provider_clients, settings_for(moto, secret_access_key="key-" + canary))
    assert one(client, SecretRef("a", name, field="k"))[0] == canary.encode()
    client.get([SecretRef("b", name, field="missing"), SecretRef("c", unique("x"))])
    client.close(grace=2.0)
    text = provider_logs(caplog)
    assert "configured" in text
    assert canary not in text


def test_large_secret(moto: MotoServer, provider_clients: list[Any], tmp_path: Path) -> None:
    name = unique("large")
    value = "x" * 65536  # the Secrets Manager maximum for SecretString
    moto.client().create_secret(Name=name, SecretString=value)
    client = start(provider_clients, settings_for(moto))
    assert one(client, SecretRef("a", name))[0] == value.encode()
