"""The provider SDK: what a dso provider written in Python imports.

    from providers.sdk import Provider, SecretData, SecretNotFound, serve

    class MyProvider(Provider):
        name = "mine"
        version = "1.0.0"

        def configure(self, settings): ...
        def get_secret(self, ref): return SecretData(b"...", version="3")

    if __name__ == "__main__":
        serve(MyProvider)

The protocol itself is in docs/provider-protocol.md and :mod:`kernel.protocol`.
"""

from __future__ import annotations

from kernel.protocol.codes import ErrorCode
from kernel.protocol.handshake import Capability
from kernel.protocol.messages import WireError
from kernel.protocol.methods import GetResult, SecretData, SecretRef, VersionsResult
from providers.sdk.errors import (
    AccessDenied,
    AuthFailed,
    BackendUnavailable,
    DeadlineExceeded,
    InternalFault,
    InvalidRequest,
    ProviderFault,
    SecretNotFound,
    fault_for,
)
from providers.sdk.logs import get_logger
from providers.sdk.provider import Provider, current_deadline, time_left
from providers.sdk.serve import run, serve

__all__ = [
    "AccessDenied",
    "AuthFailed",
    "BackendUnavailable",
    "Capability",
    "DeadlineExceeded",
    "ErrorCode",
    "GetResult",
    "InternalFault",
    "InvalidRequest",
    "Provider",
    "ProviderFault",
    "SecretData",
    "SecretNotFound",
    "SecretRef",
    "VersionsResult",
    "WireError",
    "current_deadline",
    "fault_for",
    "get_logger",
    "run",
    "serve",
    "time_left",
]
