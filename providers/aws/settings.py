"""The aws provider's settings (the ``configure`` map from dso.yaml), validated strictly.

    region                  eu-west-1              or $AWS_REGION / $AWS_DEFAULT_REGION
    endpoint_url            https://vpce-…         Secrets Manager endpoint (VPC endpoint, tests)
    sts_endpoint_url        https://sts.eu-west-1… STS endpoint for assume-role
    ca_file                 /etc/ssl/corp-ca.pem   CA bundle for both (else $AWS_CA_BUNDLE)
    profile                 prod                   a profile of ~/.aws/config (or $AWS_PROFILE)
    access_key_id           AKIA…                  static keys (with secret_access_key and,
    secret_access_key       ${AWS_SECRET_KEY}      for temporary keys, session_token)
    session_token           ${AWS_SESSION_TOKEN}
    role_arn                arn:aws:iam::…:role/x  assume this role with the credentials above
    external_id             …                      the role's ExternalId condition
    session_name            dso                    RoleSessionName
    role_duration           3600                   seconds per assumed-role session (900-43200)
    max_attempts            4                      attempts per call (adaptive retry mode)
    list_secrets_threshold  10                     batches of at least this many distinct
                                                   secrets use one ListSecrets pagination for
                                                   ``versions`` instead of DescribeSecret each

Without keys or a profile, boto3's default chain applies (environment variables the ``env``
list passes, ~/.aws files, container and instance metadata).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from providers.sdk.settings import SettingsReader

PROVIDER = "aws"

KNOWN_SETTINGS = (
    "region",
    "endpoint_url",
    "sts_endpoint_url",
    "ca_file",
    "profile",
    "access_key_id",
    "secret_access_key",
    "session_token",
    "role_arn",
    "external_id",
    "session_name",
    "role_duration",
    "max_attempts",
    "list_secrets_threshold",
)


@dataclass(frozen=True, slots=True)
class AwsSettings:
    """Everything ``configure`` accepted, ready for boto3."""

    region: str | None = None
    endpoint_url: str | None = None
    sts_endpoint_url: str | None = None
    ca_file: Path | None = None
    profile: str | None = None
    access_key_id: str | None = None
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    role_arn: str | None = None
    external_id: str | None = field(default=None, repr=False)
    session_name: str = "dso"
    role_duration: int = 3600
    max_attempts: int = 4
    list_secrets_threshold: int = 10

    @property
    def verify(self) -> str | None:
        """botocore's ``verify``: a CA file, or None for its default (AWS_CA_BUNDLE, certifi)."""
        return None if self.ca_file is None else str(self.ca_file)

    @classmethod
    def parse(cls, settings: Mapping[str, Any], environ: Mapping[str, str]) -> AwsSettings:
        """Validate ``settings``; raises ``InvalidRequest`` naming the bad key."""
        reader = SettingsReader(settings, provider=PROVIDER)
        reader.check_keys(KNOWN_SETTINGS)
        region = reader.text(
            "region", environ.get("AWS_REGION") or environ.get("AWS_DEFAULT_REGION") or None
        )
        for key in ("endpoint_url", "sts_endpoint_url"):
            url = reader.text(key)
            if url is not None:
                parts = urlsplit(url)
                if parts.scheme not in ("http", "https") or not parts.hostname:
                    raise reader.fail(key, "must be an http:// or https:// URL with a host")
        key_id = reader.text("access_key_id")
        secret_key = reader.text("secret_access_key")
        if (key_id is None) != (secret_key is None):
            missing = "secret_access_key" if secret_key is None else "access_key_id"
            raise reader.fail(missing, "is required when the other half of the key pair is set")
        if reader.has("session_token") and key_id is None:
            raise reader.fail("session_token", "needs access_key_id and secret_access_key")
        if key_id is not None and reader.has("profile"):
            raise reader.fail("profile", "cannot be combined with access_key_id")
        role_arn = reader.text("role_arn")
        if role_arn is not None and not role_arn.startswith("arn:"):
            raise reader.fail("role_arn", "must be a role ARN (arn:aws:iam::<account>:role/<name>)")
        for key in ("external_id", "session_name", "role_duration"):
            if role_arn is None and reader.has(key):
                raise reader.fail(key, "only applies with role_arn")
        session_name = reader.text("session_name", "dso") or "dso"
        if not 2 <= len(session_name) <= 64:
            raise reader.fail("session_name", "must be 2 to 64 characters")
        ca_file = reader.path("ca_file")
        if ca_file is not None and not ca_file.exists():
            raise reader.fail("ca_file", f"names {str(ca_file)!r}, which does not exist")
        return cls(
            region=region,
            endpoint_url=reader.text("endpoint_url"),
            sts_endpoint_url=reader.text("sts_endpoint_url"),
            ca_file=ca_file,
            profile=reader.text("profile"),
            access_key_id=key_id,
            secret_access_key=secret_key,
            session_token=reader.text("session_token"),
            role_arn=role_arn,
            external_id=reader.text("external_id"),
            session_name=session_name,
            role_duration=reader.integer("role_duration", 3600, minimum=900, maximum=43200),
            max_attempts=reader.integer("max_attempts", 4, minimum=1, maximum=20),
            list_secrets_threshold=reader.integer(
                "list_secrets_threshold", 10, minimum=1, maximum=100_000
            ),
        )
