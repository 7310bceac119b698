"""The ``aws`` provider: AWS Secrets Manager secrets over protocol v1.

Run from source as ``python -m providers.aws``; frozen as ``dso-provider-aws``. Settings,
credentials, addressing, change detection and the minimal IAM policy: docs/providers/aws.md.
"""

from __future__ import annotations

from providers.aws.provider import AwsProvider

__all__ = ["AwsProvider"]
