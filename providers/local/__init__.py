"""The ``local`` provider: the local encrypted vault (``~/.dso/vault.enc``) over protocol v1.

Run from source as ``python -m providers.local``; frozen as ``dso-provider-local``. Settings,
change detection and error mapping: docs/providers/local.md.
"""

from __future__ import annotations

from providers.local.provider import LocalProvider

__all__ = ["LocalProvider"]
