"""The aws provider: secrets from AWS Secrets Manager, through boto3.

A reference's ``path`` is a secret name or ARN (full or partial). Without a ``field`` the
secret is delivered as stored: ``SecretString`` as its UTF-8 text, ``SecretBinary`` as its
bytes. With a field the secret is parsed as JSON and the field delivered (strings raw, other
values as their JSON text, see :mod:`providers.sdk.fields`). ``version`` pins a ``VersionId``
(anything shaped like a UUID) or else a ``VersionStage`` (``AWSPREVIOUS``, custom labels).
The version id delivered is always the concrete ``VersionId``.

``versions`` reads no values: ``DescribeSecret`` per distinct secret, or — for batches of at
least ``list_secrets_threshold`` distinct secrets — one ``ListSecrets`` pagination, whose
``SecretVersionsToStages`` covers every secret at once. docs/providers/aws.md is the guide.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from providers.aws.errors import translate
from providers.aws.settings import AwsSettings
from providers.sdk import (
    AccessDenied,
    GetResult,
    InternalFault,
    Provider,
    ProviderFault,
    SecretData,
    SecretNotFound,
    SecretRef,
    VersionsResult,
    WireError,
    get_logger,
    time_left,
)
from providers.sdk.errors import wire_error_for
from providers.sdk.fields import parse_json, select_field

log = get_logger("aws")

T = TypeVar("T")

#: Release of this provider program.
VERSION = "1.0.0"
#: The stage AWS puts on the current version of every secret.
CURRENT = "AWSCURRENT"
#: ``version`` values of this shape pin a VersionId; anything else names a VersionStage.
_VERSION_ID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"
)


def is_version_id(version: str) -> bool:
    """True when a pinned ``version`` is a VersionId (a UUID) rather than a staging label."""
    return _VERSION_ID.fullmatch(version) is not None


def version_args(version: str | None) -> dict[str, str]:
    """The ``GetSecretValue`` arguments pinning ``version`` (none: the current version)."""
    if version is None:
        return {}
    return {"VersionId": version} if is_version_id(version) else {"VersionStage": version}


def version_from_stages(stages: Mapping[str, Any], pinned: str | None) -> str | None:
    """The VersionId a reference resolves to, from a ``{VersionId: [stages]}`` map."""
    if pinned is not None and is_version_id(pinned):
        return pinned if pinned in stages else None
    label = CURRENT if pinned is None else pinned
    for version_id, labels in stages.items():
        if isinstance(labels, list) and label in labels:
            return str(version_id)
    return None


class AwsProvider(Provider):
    """Reads Secrets Manager secrets; maps every botocore error to a wire code."""

    name = "aws"
    version = VERSION

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ
        self._lock = threading.Lock()
        self._client: Any = None
        self._settings: AwsSettings | None = None
        self._can_list = True

    @classmethod
    def check_settings(cls, settings: Mapping[str, Any], environ: Mapping[str, str]) -> None:
        AwsSettings.parse(settings, environ)

    def configure(self, settings: Mapping[str, Any]) -> None:
        parsed = AwsSettings.parse(settings, self._environ)
        # Imported here, not at the top: boto3 takes ~0.15 s, and the handshake need not wait.
        from providers.aws.client import make_client

        client = make_client(parsed, f"dso-provider-aws/{VERSION}")
        can_list = True
        try:
            # Surfaces bad credentials and an unreachable endpoint now, as the protocol asks.
            with translate("checking credentials with ListSecrets"):
                client.list_secrets(MaxResults=1)
        except AccessDenied:
            can_list = False
            log.warning(
                "ListSecrets is not allowed: 'versions' uses DescribeSecret per secret and"
                " 'list' is unavailable; grant secretsmanager:ListSecrets to use one call"
            )
        with self._lock:
            # The previous client is not closed: requests in flight may still be using it.
            self._client, self._settings, self._can_list = client, parsed, can_list
        log.info("configured", extra={"region": client.meta.region_name, "list": can_list})

    def close(self) -> None:
        with self._lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _state(self) -> tuple[Any, AwsSettings, bool]:
        client, settings = self._client, self._settings
        if client is None or settings is None:
            raise RuntimeError("aws provider used before configure")
        return client, settings, self._can_list

    # -- get ------------------------------------------------------------------------------------

    def get(self, refs: Sequence[SecretRef]) -> GetResult:
        """Values for a batch; references to the same secret and version share one call."""
        client, _, _ = self._state()

        def fetch(path: str, version: str | None) -> dict[str, Any]:
            time_left()
            with translate(repr(path)):
                answer: dict[str, Any] = client.get_secret_value(
                    SecretId=path, **version_args(version)
                )
            return answer

        values: dict[str, SecretData] = {}
        errors: dict[str, WireError] = {}
        for ref, outcome in _batch(refs, fetch):
            try:
                if isinstance(outcome, Exception):
                    raise outcome
                values[ref.id] = _deliver(outcome, ref)
            except Exception as exc:
                errors[ref.id] = wire_error_for(exc, f"get {ref.path!r}")
        return GetResult(values, errors)

    # -- versions -------------------------------------------------------------------------------

    def versions(self, refs: Sequence[SecretRef]) -> VersionsResult:
        """Version ids without values (see the module doc for the call pattern)."""
        client, settings, can_list = self._state()
        listed: dict[str, Mapping[str, Any]] = {}
        distinct = {ref.path for ref in refs}
        if can_list and len(distinct) >= settings.list_secrets_threshold:
            try:
                listed = self._list_stages(client)
            except ProviderFault as fault:  # each secret is then described on its own
                log.info("ListSecrets failed (%s): using DescribeSecret", fault.code.value)

        def version(path: str, pinned: str | None) -> str:
            stages = listed.get(path)
            if stages is None:
                stages = self._describe_stages(client, path)
                listed[path] = stages
            found = version_from_stages(stages, pinned)
            if found is not None:
                return found
            if pinned is not None and is_version_id(pinned):
                # A version without a staging label is not in the stages map but may still
                # exist; only GetSecretValue can tell (its value is dropped at once).
                time_left()
                with translate(repr(path)):
                    client.get_secret_value(SecretId=path, VersionId=pinned)
                return pinned
            label = CURRENT if pinned is None else pinned
            raise SecretNotFound(f"{path!r}: no version carries the staging label {label!r}")

        found: dict[str, str] = {}
        errors: dict[str, WireError] = {}
        for ref, outcome in _batch(refs, version):
            if isinstance(outcome, Exception):
                errors[ref.id] = wire_error_for(outcome, f"versions {ref.path!r}")
            else:
                found[ref.id] = outcome
        return VersionsResult(found, errors)

    def _describe_stages(self, client: Any, path: str) -> Mapping[str, Any]:
        time_left()
        with translate(repr(path)):
            answer = client.describe_secret(SecretId=path)
        if answer.get("DeletedDate") is not None:
            raise SecretNotFound(f"{path!r}: the secret is scheduled for deletion")
        stages = answer.get("VersionIdsToStages")
        return stages if isinstance(stages, dict) else {}

    def _list_stages(self, client: Any) -> dict[str, Mapping[str, Any]]:
        """``{name or ARN: {VersionId: [stages]}}`` for every secret, from ListSecrets."""
        stages: dict[str, Mapping[str, Any]] = {}
        with translate("ListSecrets"):
            for page in client.get_paginator("list_secrets").paginate(
                PaginationConfig={"PageSize": 100}
            ):
                time_left()
                for entry in page.get("SecretList", []):
                    mapping = entry.get("SecretVersionsToStages")
                    if isinstance(mapping, dict):
                        for key in (entry.get("Name"), entry.get("ARN")):
                            if isinstance(key, str):
                                stages[key] = mapping
        return stages

    # -- list -----------------------------------------------------------------------------------

    def list_names(self, prefix: str | None) -> list[str]:
        client, _, can_list = self._state()
        if not can_list:
            raise AccessDenied("listing secrets needs secretsmanager:ListSecrets")
        kwargs: dict[str, Any] = {"PaginationConfig": {"PageSize": 100}}
        if prefix:
            kwargs["Filters"] = [{"Key": "name", "Values": [prefix]}]
        names: list[str] = []
        with translate("ListSecrets"):
            for page in client.get_paginator("list_secrets").paginate(**kwargs):
                names.extend(
                    e["Name"] for e in page.get("SecretList", []) if isinstance(e.get("Name"), str)
                )
        return sorted(n for n in set(names) if not prefix or n.startswith(prefix))


def _batch(
    refs: Sequence[SecretRef], fetch: Callable[[str, str | None], T]
) -> list[tuple[SecretRef, T | Exception]]:
    """``fetch(path, version)`` once per distinct secret and version of the batch."""
    done: dict[tuple[str, str | None], T | Exception] = {}
    outcomes: list[tuple[SecretRef, T | Exception]] = []
    for ref in refs:
        key = (ref.path, ref.version)
        if key not in done:
            try:
                done[key] = fetch(*key)
            except Exception as exc:
                done[key] = exc
        outcomes.append((ref, done[key]))
    return outcomes


def _deliver(answer: Mapping[str, Any], ref: SecretRef) -> SecretData:
    version = answer.get("VersionId")
    if not isinstance(version, str) or not version:
        raise InternalFault(f"{ref.path!r}: AWS answered without a VersionId")
    text, binary = answer.get("SecretString"), answer.get("SecretBinary")
    raw: str | bytes
    if isinstance(text, str):
        raw, value = text, text.encode("utf-8", "surrogatepass")
    elif isinstance(binary, bytes):
        raw = value = binary
    else:
        raise SecretNotFound(f"{ref.path!r}: this version holds no value")
    if ref.field is None:
        return SecretData(value, version)
    document = parse_json(raw, repr(ref.path), ref.field)
    return SecretData(select_field(document, ref.field, repr(ref.path)), version)
