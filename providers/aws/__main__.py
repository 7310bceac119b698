"""``python -m providers.aws``: run the AWS Secrets Manager provider (``--describe``: metadata)."""

from __future__ import annotations

from providers.aws.provider import AwsProvider
from providers.sdk import serve

if __name__ == "__main__":
    serve(AwsProvider)
