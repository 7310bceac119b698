"""Building the Secrets Manager client: credentials, an optional assumed role, retries.

Credentials come from the settings (static keys), a named profile, or boto3's default chain.
With ``role_arn`` those are only the *source* credentials: the client signs with temporary
credentials from STS ``AssumeRole``, which botocore's own fetcher refreshes shortly before they
expire (the same machinery boto3 uses for ``role_arn`` in ~/.aws/config). Retries use
botocore's ``adaptive`` mode: exponential backoff plus client-side rate limiting when AWS
throttles.
"""

from __future__ import annotations

import functools
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import (
    AssumeRoleCredentialFetcher,
    CredentialProvider,
    DeferredRefreshableCredentials,
)

from providers.aws.errors import translate
from providers.aws.settings import AwsSettings
from providers.sdk import AuthFailed

#: Seconds to connect and to wait for an answer, per attempt.
CONNECT_TIMEOUT = 5.0
READ_TIMEOUT = 10.0


def client_config(settings: AwsSettings, user_agent: str) -> Config:
    return Config(
        retries={"mode": "adaptive", "max_attempts": settings.max_attempts},
        connect_timeout=CONNECT_TIMEOUT,
        read_timeout=READ_TIMEOUT,
        user_agent_extra=user_agent,
    )


def make_client(settings: AwsSettings, user_agent: str) -> Any:
    """A ``secretsmanager`` client for ``settings``; raises a ProviderFault on bad settings."""
    with translate("AWS client setup"):
        session = boto3.session.Session(
            profile_name=settings.profile,
            region_name=settings.region,
            aws_access_key_id=settings.access_key_id,
            aws_secret_access_key=settings.secret_access_key,
            aws_session_token=settings.session_token,
        )
        config = client_config(settings, user_agent)
        if settings.role_arn is not None:
            session = _assume_role_session(session, settings, config)
        return session.client(
            "secretsmanager",
            endpoint_url=settings.endpoint_url,
            config=config,
            verify=settings.verify,
        )


class _AssumedRole(CredentialProvider):  # type: ignore[misc]
    """Puts the assumed-role credentials first in the session's credential chain."""

    METHOD = "dso-assume-role"
    CANONICAL_NAME = "dso-assume-role"

    def __init__(self, fetcher: AssumeRoleCredentialFetcher) -> None:
        super().__init__()
        self._fetcher = fetcher

    def load(self) -> DeferredRefreshableCredentials:
        return DeferredRefreshableCredentials(
            refresh_using=self._fetcher.fetch_credentials, method=self.METHOD
        )


def _assume_role_session(
    base: boto3.session.Session, settings: AwsSettings, config: Config
) -> boto3.session.Session:
    source = base.get_credentials()
    if source is None:
        raise AuthFailed(
            "no AWS credentials to assume the role with: set access keys or a profile, or pass"
            " AWS_* variables through 'env'"
        )
    extra: dict[str, Any] = {
        "RoleSessionName": settings.session_name,
        "DurationSeconds": settings.role_duration,
    }
    if settings.external_id is not None:
        extra["ExternalId"] = settings.external_id
    sts = functools.partial(
        base.client,
        region_name=base.region_name,
        endpoint_url=settings.sts_endpoint_url,
        config=config,
        verify=settings.verify,
    )
    fetcher = AssumeRoleCredentialFetcher(
        client_creator=sts,
        source_credentials=source,
        role_arn=settings.role_arn,
        extra_args=extra,
    )
    core = botocore.session.Session()
    core.get_component("credential_provider").insert_before("env", _AssumedRole(fetcher))
    return boto3.session.Session(botocore_session=core, region_name=base.region_name)
